import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type ChatMessage, HippoError, IGNORE_INDEX, type TokenizedExample } from "@hippocrates/core";
import { type HfTokenizer, loadTokenizer } from "@hippocrates/tokenizer";
import { afterAll, beforeAll, expect } from "vitest";

/** shared/data beside the repository (resolved from the repo root, never an absolute path). */
export const SHARED = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
export const ORI_PQAL = join(SHARED, "benchmarks/pubmedqa/ori_pqal.json");
export const MEDQA_TEST = join(SHARED, "benchmarks/medqa/medqa_us_4options_test.jsonl");
export const MEDMCQA_DEV = join(SHARED, "benchmarks/medmcqa/medmcqa_validation_4183.jsonl");
export const PUBMEDQA_TEST500 = join(SHARED, "benchmarks/pubmedqa/medagents_pubmedqa_test500.jsonl");

let tok: Promise<HfTokenizer> | undefined;
export function llama2(): Promise<HfTokenizer> {
  tok ??= loadTokenizer(join(SHARED, "tokenizers/llama2"));
  return tok;
}

export async function tempDir(): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "hippo-data-"));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * A temporary folder for the tests of the enclosing describe block: made before the first, removed after the
 * last. `dir` is read inside the tests.
 */
export function useTempDir(): { readonly dir: string } {
  let t: Awaited<ReturnType<typeof tempDir>> | undefined;
  beforeAll(async () => {
    t = await tempDir();
  });
  afterAll(() => t?.cleanup());
  return {
    get dir(): string {
      if (t === undefined) throw new Error("the temporary folder exists only while its tests run");
      return t.dir;
    },
  };
}

export async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

/** The HippoError `p` rejects with (anything else fails the test). */
export async function failure(p: Promise<unknown>): Promise<HippoError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof HippoError)) throw new Error(`expected a HippoError, got ${String(e)}`);
  return e;
}

/** A multi-turn conversation with a system prompt (the ShareGPT record of the reader tests, as messages). */
export const CONVERSATION: ChatMessage[] = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hi" },
  { role: "assistant", content: "Hello." },
  { role: "user", content: "Fever?" },
  { role: "assistant", content: "Rest." },
];

/** The runs of consecutive labelled tokens of an example, as ids (a label, where there is one, is its input id). */
export function labelledRuns(ex: TokenizedExample): number[][] {
  const runs: number[][] = [];
  let cur: number[] = [];
  ex.labels.forEach((l, i) => {
    if (l !== IGNORE_INDEX) {
      expect(l).toBe(ex.inputIds[i]);
      cur.push(l);
    } else if (cur.length) {
      runs.push(cur);
      cur = [];
    }
  });
  if (cur.length) runs.push(cur);
  return runs;
}

/** The labelled tokens of an example, decoded (what the loss is taken on), and the masked ones (Llama-2). */
export async function labelledAndMasked(ex: TokenizedExample | undefined) {
  if (!ex) throw new Error("no example");
  const tok = await llama2();
  ex.labels.forEach((l, i) => {
    if (l !== IGNORE_INDEX) expect(l).toBe(ex.inputIds[i]);
  });
  return {
    labelled: await tok.decode(ex.inputIds.filter((_, i) => ex.labels[i] !== IGNORE_INDEX)),
    masked: await tok.decode(
      ex.inputIds.filter((_, i) => ex.labels[i] === IGNORE_INDEX),
      { skipSpecialTokens: true },
    ),
  };
}

export async function readJsonl<T = unknown>(path: string): Promise<T[]> {
  const text = await readFile(path, "utf8");
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l) as T);
}

/** Everything in `dir` (names), to check that a failed build left nothing behind. */
export async function listAll(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map(String).sort();
}
