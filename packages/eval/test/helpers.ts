import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { type HfTokenizer, loadTokenizer } from "@hippocrates/tokenizer";
import { afterAll, beforeAll } from "vitest";
import { type EvaluateOptions, evaluate } from "../src/index.js";

/** The shared data folder, resolved from the repo root (CI puts `shared/` beside the clone). */
export const DATA_DIR = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));

let tokenizer: Promise<HfTokenizer> | undefined;
/** The shared Llama-2 tokenizer, loaded once per test file. */
export function llama2(): Promise<HfTokenizer> {
  tokenizer ??= loadTokenizer(join(DATA_DIR, "tokenizers/llama2"));
  return tokenizer;
}

/** `evaluate` on the shared data folder with the Llama-2 tokenizer (`options` may replace either). */
export async function evaluateShared(
  options: Omit<EvaluateOptions, "tokenizer"> & Partial<Pick<EvaluateOptions, "tokenizer">>,
): ReturnType<typeof evaluate> {
  return evaluate({ tokenizer: await llama2(), dataDir: DATA_DIR, ...options });
}

/**
 * A temporary folder for the tests of this file (or of the enclosing describe block): made before the first,
 * removed after the last. `dir` is read inside the tests.
 */
export function useTempDir(prefix: string): { readonly dir: string } {
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
  return {
    get dir(): string {
      if (dir === undefined) throw new Error("the temporary folder exists only while its tests run");
      return dir;
    },
  };
}

export function rawJsonl(rel: string): Record<string, unknown>[] {
  return readFileSync(DATA_DIR + rel, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}

export const pythonRandom = JSON.parse(
  readFileSync(new URL("./fixtures/python_random.json", import.meta.url), "utf8"),
);

/**
 * A data folder with the shared benchmarks and the small MedQA/MedMCQA training files that
 * `fixtures/make_harness_replay.py` wrote (the shared data has no training splits; 5-shot needs them).
 */
export async function dataDirWithTrainSplits(): Promise<{ dir: string; remove(): Promise<void> }> {
  const { copyFile, mkdir, mkdtemp, rm, symlink } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const fixtures = fileURLToPath(new URL("./fixtures/", import.meta.url));
  const dir = await mkdtemp(join(tmpdir(), "hippo-eval-data-"));
  const b = join(dir, "benchmarks");
  await mkdir(join(b, "medqa"), { recursive: true });
  await mkdir(join(b, "medmcqa"), { recursive: true });
  await symlink(join(DATA_DIR, "benchmarks/pubmedqa"), join(b, "pubmedqa"));
  await symlink(join(DATA_DIR, "benchmarks/mmlu_medical"), join(b, "mmlu_medical"));
  for (const f of ["medqa_us_4options_test.jsonl", "medqa_us_5options_test.jsonl"])
    await symlink(join(DATA_DIR, "benchmarks/medqa", f), join(b, "medqa", f));
  await symlink(
    join(DATA_DIR, "benchmarks/medmcqa/medmcqa_validation_4183.jsonl"),
    join(b, "medmcqa/medmcqa_validation_4183.jsonl"),
  );
  await copyFile(join(fixtures, "harness_medqa_train.jsonl"), join(b, "medqa/medqa_us_4options_train.jsonl"));
  await copyFile(join(fixtures, "harness_medmcqa_train.jsonl"), join(b, "medmcqa/medmcqa_train.jsonl"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
