import { IGNORE_INDEX, type TokenizedExample } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { accumulateGradients } from "../src/loop.js";
import { lmTask, responseExample } from "../src/tasks.js";
import { centralDifference } from "./finite-diff.js";
import { createMlpLm } from "./helpers.js";

const examples: TokenizedExample[] = [
  responseExample([1, 4, 5], [7, 8, 9, 2]),
  { inputIds: [1, 3, 3, 6, 2], labels: [1, 3, 3, 6, 2] },
  responseExample([1, 10], [11, 2]),
  { inputIds: [1, 5, 9, 9, 4, 4, 8, 2], labels: [IGNORE_INDEX, IGNORE_INDEX, 9, 9, 4, 4, 8, 2] },
];

describe("gradients of the full loss (shift + masking + normalisation)", () => {
  it("equal central finite differences", async () => {
    const model = createMlpLm(12, 6, 3);
    const task = lmTask(model, { padId: 0 });
    const units = task.units(examples);
    const lossOf = () =>
      tf.tidy(() => tf.div(task.lossSum(examples, { training: false }).loss, units).dataSync()[0] as number);
    const { grads } = await accumulateGradients(task, [examples], model.variables);
    // float32 forward: the loss (~2.5) carries ~3e-7 rounding, so with eps = 1e-2 the central difference has
    // ~3e-5 rounding error and O(eps^2) = 1e-4 truncation error: tolerance 1e-3 absolute + 1e-2 relative.
    const eps = 1e-2;
    let checked = 0;
    for (let vi = 0; vi < model.variables.length; vi++) {
      const v = model.variables[vi] as tf.Variable;
      const analytic = await (grads[vi] as tf.Tensor).data();
      const base = (await v.data()).slice();
      for (let k = 0; k < Math.min(12, v.size); k++) {
        const j = (k * 7919) % v.size;
        const numeric = centralDifference(v, base, j, eps, lossOf);
        expect(Math.abs((analytic[j] as number) - numeric)).toBeLessThan(1e-3 + 1e-2 * Math.abs(numeric));
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(30);
    for (const g of grads) g.dispose();
    model.dispose();
  });
});

describe("gradient accumulation", () => {
  it("k micro-batches give the gradient of one batch k times the size (per-token mean over the whole batch)", async () => {
    const model = createMlpLm(12, 6, 4);
    const task = lmTask(model, { padId: 0 });
    const whole = await accumulateGradients(task, [examples], model.variables);
    const split = await accumulateGradients(task, [examples.slice(0, 1), examples.slice(1)], model.variables); // 4 vs 12 targets
    const four = await accumulateGradients(
      task,
      examples.map((e) => [e]),
      model.variables,
    );
    expect(split.loss).toBeCloseTo(whole.loss, 5);
    expect(four.loss).toBeCloseTo(whole.loss, 5);
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < whole.grads.length; i++) {
      const a = await (whole.grads[i] as tf.Tensor).data();
      const b = await (split.grads[i] as tf.Tensor).data();
      const c = await (four.grads[i] as tf.Tensor).data();
      for (let j = 0; j < a.length; j++) {
        maxDiff = Math.max(
          maxDiff,
          Math.abs((a[j] as number) - (b[j] as number)),
          Math.abs((a[j] as number) - (c[j] as number)),
        );
        maxAbs = Math.max(maxAbs, Math.abs(a[j] as number));
      }
    }
    // float32 sums in another order: 1e-6 of the largest gradient.
    expect(maxDiff).toBeLessThan(1e-6 * Math.max(1, maxAbs));
    // The naive alternative (mean of per-micro-batch means) differs here, since the micro-batches hold different
    // numbers of target tokens: the check above can fail.
    const meanOfMeans =
      0.5 * (await lossMean(task, examples.slice(0, 1))) + 0.5 * (await lossMean(task, examples.slice(1)));
    expect(Math.abs(meanOfMeans - whole.loss)).toBeGreaterThan(1e-3);
    for (const g of [...whole.grads, ...split.grads, ...four.grads]) g.dispose();
    model.dispose();
  });
});

async function lossMean(task: ReturnType<typeof lmTask>, items: TokenizedExample[]): Promise<number> {
  const t = tf.tidy(() => tf.div(task.lossSum(items, { training: false }).loss, task.units(items)));
  const v = (await t.data())[0] as number;
  t.dispose();
  return v;
}
