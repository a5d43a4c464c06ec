/**
 * The request cache: one append-only JSONL file per model, one line per scored document,
 * `{"k": key, "r": [[logprob, isGreedy], ...]}`, the key a SHA-256 of the model name and the document's
 * requests (token ids of every context and continuation, in order). A document is cached whole because it is
 * scored whole: the model always sees exactly one document's requests in a call (see `evaluate.ts`), so a
 * cached value is the value a fresh run computes, bit for bit, and an interrupted, resumed, sharded or cached
 * run gives the numbers of one clean run.
 *
 * The file is untrusted (a crash mid-append, a hand edit, another version): a line that is not JSON, not
 * UTF-8, not of this shape, holds a log-probability that is not a finite number <= 0, or is a torn last line
 * is discarded, and so is a key that appears with different values; the documents are rescored. `discarded`
 * counts them so the caller can say so once. A key is written at most once per file.
 */
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  appendJsonl,
  HippoError,
  isPlainObject,
  type LogLikelihoodRequest,
  type LogLikelihoodResult,
  readJsonl,
  writeJsonlAtomic,
} from "@hippocrates/core";

/** The cache key of one document's requests under one model. */
export function requestKey(modelName: string, requests: readonly LogLikelihoodRequest[]): string {
  return createHash("sha256")
    .update(JSON.stringify([modelName, requests.map((r) => [r.context, r.continuation])]))
    .digest("hex");
}

/** A log-likelihood as a cache (or a model) may hold it: a finite number, at most 0. */
export function isLogLikelihood(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v) && v <= 0;
}

export interface RequestCache {
  readonly path: string;
  /** The results of a document's `n` requests, or undefined (then it must be scored). */
  get(key: string, n: number): LogLikelihoodResult[] | undefined;
  /**
   * Keep a document's results and append them to the file (a key already held is not written again).
   * Appends are batched (every 64 documents or second, fsynced): a crash loses at most those, which a rerun
   * scores again to the same values.
   */
  put(key: string, results: readonly LogLikelihoodResult[]): Promise<void>;
  /** Write what `put` has not written yet. */
  flush(): Promise<void>;
  readonly size: number;
  /** Entries (lines) that could not be used: they are rescored. */
  readonly discarded: number;
}

function parseEntry(v: unknown): { key: string; results: LogLikelihoodResult[] } | undefined {
  if (!isPlainObject(v) || typeof v.k !== "string" || !/^[0-9a-f]{64}$/.test(v.k)) return undefined;
  if (!Array.isArray(v.r) || v.r.length === 0) return undefined;
  const results: LogLikelihoodResult[] = [];
  for (const x of v.r) {
    if (!Array.isArray(x) || x.length !== 2 || !isLogLikelihood(x[0]) || typeof x[1] !== "boolean")
      return undefined;
    results.push({ logprob: x[0], isGreedy: x[1] });
  }
  return { key: v.k, results };
}

const same = (a: readonly LogLikelihoodResult[], b: readonly LogLikelihoodResult[]) =>
  a.length === b.length &&
  a.every((x, i) => Object.is(x.logprob, b[i]?.logprob) && x.isGreedy === b[i]?.isGreedy);

export async function openRequestCache(dir: string, modelName: string): Promise<RequestCache> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new HippoError("IO", `cannot create the request cache folder: ${(e as Error).message}`, {
      file: dir,
      cause: e,
    });
  }
  const name = createHash("sha256").update(modelName).digest("hex").slice(0, 16);
  // "docs": one line per document (an older per-request cache, loglik-<hash>.jsonl, is left alone).
  const path = join(dir, `loglik-docs-${name}.jsonl`);
  const map = new Map<string, LogLikelihoodResult[]>();
  const conflicting = new Set<string>();
  let discarded = 0;
  let tornAt: number | undefined;
  try {
    for await (const { value } of readJsonl(path, {
      onInvalidLine: () => {
        discarded++;
      },
      onTornTail: ({ offset }) => {
        discarded++;
        tornAt = offset;
      },
    })) {
      const entry = parseEntry(value);
      if (!entry) {
        discarded++;
        continue;
      }
      const held = map.get(entry.key);
      if (conflicting.has(entry.key)) discarded++;
      else if (held === undefined) map.set(entry.key, entry.results);
      else if (!same(held, entry.results)) {
        // A key with two values: neither can be trusted.
        map.delete(entry.key);
        conflicting.add(entry.key);
        discarded += 2;
      }
    }
  } catch (e) {
    if (!(e instanceof HippoError && e.code === "NOT_FOUND")) throw e;
  }
  // Rewrite the file with the usable entries only (atomically): a torn tail is cut off so that the next
  // append starts on a line of its own, and a conflicting key does not come back on the next open.
  if (discarded > 0 || tornAt !== undefined)
    await writeJsonlAtomic(
      path,
      [...map].map(([k, r]) => ({ k, r: r.map((x) => [x.logprob, x.isGreedy]) })),
    );
  let pending: unknown[] = [];
  let lastFlush = Date.now();
  const flush = async () => {
    lastFlush = Date.now();
    if (pending.length === 0) return;
    const rows = pending;
    pending = [];
    await appendJsonl(path, rows);
  };
  return {
    path,
    get(key, n) {
      const r = map.get(key);
      if (r === undefined) return undefined;
      if (r.length !== n) {
        // The key hashes the requests, so a different count means a corrupt or forged entry.
        map.delete(key);
        discarded++;
        return undefined;
      }
      return r;
    },
    async put(key, results) {
      // The first value of a key is the only one: a document is never scored twice by one run, and an
      // identical document scored beside it has the same value.
      if (map.has(key)) return;
      map.set(key, [...results]);
      pending.push({ k: key, r: results.map((x) => [x.logprob, x.isGreedy]) });
      if (pending.length >= 64 || Date.now() - lastFlush >= 1000) await flush();
    },
    flush,
    get size() {
      return map.size;
    },
    get discarded() {
      return discarded;
    },
  };
}
