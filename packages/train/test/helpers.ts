/**
 * A tiny language model for testing the training machinery without @hippocrates/model: token -> embedding ->
 * tanh MLP -> logits, plus a "previous token" term so that positions interact (the mask/segment tests of the
 * real model live in model-integration tests). Built from plain tf ops and tf.Variables.
 */
import "@tensorflow/tfjs-backend-cpu";
// The MLP uses tanh and plain matMul, whose gradients only tfjs's full set has (vitest can load it; Node's ESM
// loader cannot, see src/gradients.ts).
import "@tensorflow/tfjs-core/dist/register_all_gradients.js";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRng, type TokenizedExample } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, expect } from "vitest";
import { type LoopConfig, type LoopOptions, runTrainingLoop } from "../src/loop.js";
import type { TrainableLM } from "../src/model.js";
import { lmTask } from "../src/tasks.js";
import { abortAfter } from "./progress.js";

await tf.setBackend("cpu");

let counter = 0;

export interface MlpLm extends TrainableLM {
  variables: tf.Variable[];
  names: string[];
  dispose(): void;
}

export function createMlpLm(vocab: number, hidden: number, seed: number): MlpLm {
  const rng = createRng(seed);
  const id = counter++;
  const init = (shape: number[], scale: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.normal() * scale;
    return tf.tensor(data, shape);
  };
  const names = ["embed", "w1", "b1", "w2"];
  const shapes = [[vocab, hidden], [hidden, hidden], [hidden], [hidden, vocab]];
  const variables = names.map((n, i) => {
    const t = init(shapes[i] as number[], i === 2 ? 0.1 : 0.5);
    const v = tf.variable(t, true, `mlp${id}.${n}`);
    t.dispose();
    return v;
  });
  const [embed, w1, b1, w2] = variables as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
  return {
    variables,
    names,
    forward(inputIds) {
      const logits = tf.tidy(() => {
        const B = inputIds.length;
        const T = inputIds[0]?.length ?? 0;
        const oh = tf.oneHot(tf.tensor1d(inputIds.flat(), "int32"), vocab);
        const e = tf.matMul(oh, embed);
        const h = tf.tanh(tf.add(tf.matMul(e, w1), b1));
        return tf.reshape(tf.matMul(h, w2), [B, T, vocab]) as tf.Tensor3D;
      });
      return { logits };
    },
    dispose() {
      for (const v of variables) v.dispose();
    },
  };
}

export async function weightsOf(vars: readonly tf.Variable[]): Promise<Float32Array[]> {
  return Promise.all(vars.map(async (v) => (await v.data()) as Float32Array));
}

export function maxAbsDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let m = 0;
  a.forEach((x, i) => {
    const y = b[i] as Float32Array;
    for (let j = 0; j < x.length; j++) m = Math.max(m, Math.abs((x[j] as number) - (y[j] as number)));
  });
  return m;
}

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
export async function trainMlpUntil(outputDir: string, n: number, options: MlpRunOptions = {}): Promise<void> {
  const controller = new AbortController();
  await expect(
    trainMlp(outputDir, { ...options, progress: abortAfter(n, controller), signal: controller.signal }),
  ).rejects.toMatchObject({ code: "ABORTED" });
}
