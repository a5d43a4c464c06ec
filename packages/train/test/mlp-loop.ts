/**
 * The training loop on the tiny MLP LM (cpu backend, ./helpers.js), for the loop and checkpoint tests: the data,
 * the loop config, a run on a fresh model, a run stopped at a step, and temporary output folders.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRng, type TokenizedExample } from "@hippocrates/core";
import { afterAll, expect } from "vitest";
import { type LoopConfig, type LoopOptions, runTrainingLoop } from "../src/loop.js";
import { lmTask } from "../src/tasks.js";
import { createMlpLm, weightsOf } from "./helpers.js";
import { abortAfter } from "./progress.js";

/** A `tempDir()` for this test file: each call makes a fresh folder, all removed after the file's tests. */
export function tempDirs(prefix: string): () => Promise<string> {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });
  return async () => {
    const d = await mkdtemp(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
}

/** `n` random LM examples: BOS, 4..9 tokens of 3..15, EOS; labels = inputs. */
export function randomLmData(n: number, seed: number): TokenizedExample[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => {
    const len = 4 + rng.int(6);
    const ids = [1, ...Array.from({ length: len }, () => 3 + rng.int(13)), 2];
    return { inputIds: ids, labels: ids };
  });
}

/** 14 items, 4 per step (2 x 2 accumulated) -> 4 steps per epoch, 8 in all; a checkpoint every 2 steps. */
export const MLP_TRAIN = randomLmData(14, 1);
export const MLP_LOOP_CONFIG: LoopConfig = {
  microBatchSize: 2,
  gradientAccumulation: 2,
  epochs: 2,
  lr: 0.05,
  schedule: "cosine",
  warmupSteps: 1,
  seed: 7,
  saveSteps: 2,
  optimizer: { weightDecay: 0.01 },
};

export type MlpRunOptions = Partial<LoopOptions<TokenizedExample>> & {
  /** Initialisation seed of the MLP (vocab 16, hidden 8); default 11. */
  seed?: number;
};

/**
 * The training loop on a fresh MLP LM (the same init for the same seed) over MLP_TRAIN with MLP_LOOP_CONFIG,
 * `options` overriding any of them; returns the loop's result and the final weights.
 */
export async function trainMlp(outputDir: string, options: MlpRunOptions = {}) {
  const { seed = 11, ...extra } = options;
  const m = createMlpLm(16, 8, seed);
  try {
    const result = await runTrainingLoop({
      task: lmTask(m, { padId: 0 }),
      train: MLP_TRAIN,
      variables: m.variables,
      names: m.names,
      config: MLP_LOOP_CONFIG,
      outputDir,
      ...extra,
    });
    return { result, weights: await weightsOf(m.variables) };
  } finally {
    m.dispose();
  }
}

/** trainMlp until step `n` is done, then abort (the loop saves a checkpoint on abort). */
export async function trainMlpUntil(
  outputDir: string,
  n: number,
  options: MlpRunOptions = {},
): Promise<void> {
  const controller = new AbortController();
  await expect(
    trainMlp(outputDir, { ...options, progress: abortAfter(n, controller), signal: controller.signal }),
  ).rejects.toMatchObject({ code: "ABORTED" });
}
