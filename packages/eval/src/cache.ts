/**
 * Per-request cache on disk: one append-only JSONL file per model, each line `{"k": key, "lp": logprob,
 * "g": isGreedy}`, the key a SHA-256 of the model name and the request's token ids. Results are appended
 * as soon as a batch is scored, so an interrupted run loses at most the batch in flight and a rerun scores
 * only what is missing. A torn last line (a crash mid-write) or any unreadable line is skipped.
 */
import { createHash } from "node:crypto";
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { HippoError, type LogLikelihoodRequest, type LogLikelihoodResult } from "@hippocrates/core";

export function requestKey(modelName: string, req: LogLikelihoodRequest): string {
  return createHash("sha256")
    .update(JSON.stringify([modelName, req.context, req.continuation]))
    .digest("hex");
}

export interface RequestCache {
  readonly path: string;
  get(key: string): LogLikelihoodResult | undefined;
  /** Append results (and keep them in memory). */
  put(entries: { key: string; result: LogLikelihoodResult }[]): Promise<void>;
  readonly size: number;
  /** Lines that could not be read when the cache was opened. */
  readonly skipped: number;
}

export async function openRequestCache(dir: string, modelName: string): Promise<RequestCache> {
  await mkdir(dir, { recursive: true });
  const name = createHash("sha256").update(modelName).digest("hex").slice(0, 16);
  const path = join(dir, `loglik-${name}.jsonl`);
  const map = new Map<string, LogLikelihoodResult>();
  let skipped = 0;
  let text = "";
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      throw new HippoError("IO", `cannot read cache: ${(e as Error).message}`, { file: path, cause: e });
  }
  let needsNewline = text.length > 0 && !text.endsWith("\n");
  for (const line of text.split("\n")) {
    if (line === "") continue;
    try {
      const v = JSON.parse(line) as { k?: unknown; lp?: unknown; g?: unknown };
      const lp = typeof v.lp === "string" ? Number(v.lp) : v.lp;
      if (typeof v.k !== "string" || typeof lp !== "number" || typeof v.g !== "boolean")
        throw new Error("bad entry");
      map.set(v.k, { logprob: lp, isGreedy: v.g });
    } catch {
      skipped++;
    }
  }
  return {
    path,
    get: (key) => map.get(key),
    async put(entries) {
      if (entries.length === 0) return;
      // A torn last line from an interrupted write gets its own line end so the new entries stay readable.
      let chunk = needsNewline ? "\n" : "";
      needsNewline = false;
      for (const { key, result } of entries) {
        map.set(key, result);
        chunk += `${JSON.stringify({ k: key, lp: Number.isFinite(result.logprob) ? result.logprob : String(result.logprob), g: result.isGreedy })}\n`;
      }
      try {
        await appendFile(path, chunk, "utf8");
      } catch (e) {
        throw new HippoError("IO", `cannot append to cache: ${(e as Error).message}`, {
          file: path,
          cause: e,
        });
      }
    },
    get size() {
      return map.size;
    },
    get skipped() {
      return skipped;
    },
  };
}
