import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type HfTokenizer, loadTokenizer } from "@hippocrates/tokenizer";

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
