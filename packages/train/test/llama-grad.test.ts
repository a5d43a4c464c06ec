import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IGNORE_INDEX, type TokenizedExample } from "@hippocrates/core";
import type { CausalLM } from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accumulateGradients, evaluateLoss, runTrainingLoop } from "../src/loop.js";
import { lmTask } from "../src/tasks.js";
import { centralDifference } from "./finite-diff.js";
import { loadTinyWithLora, setupBackend } from "./llama-helpers.js";

let model: CausalLM;
beforeAll(async () => {
  await setupBackend();
  model = await loadTinyWithLora(["q_proj", "v_proj", "gate_proj", "down_proj"]);
});
afterAll(() => model?.dispose());

const packed: TokenizedExample = {
  // Two documents packed into one block, EOS (2) closing each; the first document's prompt part is masked.
  inputIds: [1, 40, 41, 42, 43, 2, 1, 50, 51, 52, 2],
  labels: [IGNORE_INDEX, IGNORE_INDEX, 41, 42, 43, 2, 1, 50, 51, 52, 2],
  segmentIds: [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
};
const plain: TokenizedExample = { inputIds: [1, 7, 300, 301, 2], labels: [1, 7, 300, 301, 2] };

describe("tiny Llama + LoRA: the full training loss", () => {
  it("has gradients equal to central finite differences (masking, shift, packing included)", async () => {
    const task = lmTask(model, { padId: 0 });
    const items = [packed, plain];
    const vars = model.trainableVariables();
    const units = task.units(items);
    const lossOf = () =>
      tf.tidy(() => tf.div(task.lossSum(items, { training: false }).loss, units).dataSync()[0] as number);
    const { grads } = await accumulateGradients(task, [items], vars);
    // float32 forward of a 2-layer model: loss ~6.2 with ~1e-6 rounding; eps 1e-2 gives ~1e-4 rounding error
    // in the central difference and O(eps^2) truncation: tolerance 2e-3 absolute + 2e-2 relative.
    const eps = 1e-2;
    let checked = 0;
    let maxAnalytic = 0;
    for (let vi = 0; vi < vars.length; vi += 3) {
      const v = vars[vi] as tf.Variable;
      const analytic = await (grads[vi] as tf.Tensor).data();
      const base = (await v.data()).slice();
      for (let k = 0; k < 3; k++) {
        const j = (k * 104729 + vi * 31) % v.size;
        const numeric = centralDifference(v, base, j, eps, lossOf);
        maxAnalytic = Math.max(maxAnalytic, Math.abs(analytic[j] as number));
        expect(Math.abs((analytic[j] as number) - numeric)).toBeLessThan(2e-3 + 2e-2 * Math.abs(numeric));
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(9);
    expect(maxAnalytic).toBeGreaterThan(1e-3); // not a vacuous check
    for (const g of grads) g.dispose();
  });

  it("a packed block's loss equals the documents' losses computed separately (block-diagonal mask, positions)", async () => {
    const task = lmTask(model, { padId: 0 });
    const doc0: TokenizedExample = {
      inputIds: packed.inputIds.slice(0, 6),
      labels: packed.labels.slice(0, 6),
    };
    const doc1: TokenizedExample = { inputIds: packed.inputIds.slice(6), labels: packed.labels.slice(6) };
    const sum = (items: TokenizedExample[]) =>
      tf.tidy(() => task.lossSum(items, { training: false }).loss.dataSync()[0] as number);
    const together = sum([packed]);
    const apart = sum([doc0]) + sum([doc1]);
    expect(task.units([packed])).toBe(task.units([doc0]) + task.units([doc1]));
    expect(Math.abs(together - apart)).toBeLessThan(1e-4); // float32 sums of ~60
    // Without segment ids the second document would see the first: the loss differs.
    const leaky = sum([
      { inputIds: packed.inputIds, labels: packed.labels.map((l, i) => (i === 6 ? IGNORE_INDEX : l)) },
    ]);
    expect(Math.abs(leaky - apart)).toBeGreaterThan(1e-3);
  });
});

describe("tiny Llama + LoRA training", () => {
  it("keeps tf.memory().numTensors flat across 50 training steps (with checkpoints and evaluation)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hippo-mem-"));
    const task = lmTask(model, { padId: 0 });
    const train = Array.from({ length: 20 }, (_, i) => ({
      ...plain,
      inputIds: plain.inputIds.map((t) => (t + i) % 512),
      labels: plain.labels.map((t) => (t + i) % 512),
    }));
    const counts: number[] = [];
    const r = await runTrainingLoop({
      task,
      train: [packed, ...train],
      variables: model.trainableVariables(),
      names: model.trainableVariables().map((_, i) => `v${i}`),
      config: {
        microBatchSize: 2,
        gradientAccumulation: 2,
        epochs: 10,
        maxSteps: 50,
        lr: 1e-3,
        schedule: "cosine",
        seed: 1,
        saveSteps: 10,
        evalSteps: 10,
      },
      outputDir: dir,
      evaluate: async () => ({ eval_loss: await evaluateLoss(task, train.slice(0, 4), 2) }),
      progress: { start: () => ({ tick: () => counts.push(tf.memory().numTensors), done() {} }) },
    });
    expect(r.globalStep).toBe(50);
    expect(new Set(counts.slice(1)).size).toBe(1);
    await rm(dir, { recursive: true, force: true });
  });
});
