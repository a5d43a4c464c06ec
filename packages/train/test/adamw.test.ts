import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { createAdamW } from "../src/adamw.js";
import { clipByGlobalNorm } from "../src/clip.js";
import "./helpers.js";

describe("AdamW", () => {
  it("equals the closed form step by step (decoupled decay, bias correction)", async () => {
    const beta1 = 0.9;
    const beta2 = 0.95;
    const eps = 1e-8;
    const wd = 0.1;
    const p0 = [0.5, -1.0, 2.0];
    const w = tf.variable(tf.tensor1d(p0), true, "adamw-test-w");
    const opt = createAdamW([w], { beta1, beta2, eps, weightDecay: wd });
    // Closed form in float64:
    //   p <- p (1 - lr wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
    //   p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    const p = [...p0];
    const m = [0, 0, 0];
    const v = [0, 0, 0];
    const lrs = [1e-2, 5e-3, 2e-2, 1e-3, 1e-2];
    for (let t = 1; t <= lrs.length; t++) {
      const lr = lrs[t - 1] as number;
      const g = [Math.sin(t), -0.3 * t, 0.05];
      const gt = tf.tensor1d(g);
      opt.apply([gt], lr);
      gt.dispose();
      for (let i = 0; i < 3; i++) {
        p[i] = (p[i] as number) * (1 - lr * wd);
        m[i] = beta1 * (m[i] as number) + (1 - beta1) * (g[i] as number);
        v[i] = beta2 * (v[i] as number) + (1 - beta2) * (g[i] as number) ** 2;
        p[i] =
          (p[i] as number) -
          (lr * ((m[i] as number) / (1 - beta1 ** t))) /
            (Math.sqrt((v[i] as number) / (1 - beta2 ** t)) + eps);
      }
      const got = await w.data();
      // float32 storage: ~1e-7 relative per op over a handful of ops.
      for (let i = 0; i < 3; i++) expect(Math.abs((got[i] as number) - (p[i] as number))).toBeLessThan(2e-6);
    }
    expect(opt.step).toBe(5);
    opt.dispose();
    w.dispose();
  });

  it("exports and imports its state exactly, without leaking tensors", async () => {
    const a = tf.variable(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      true,
      "adamw-a",
    );
    const b = tf.variable(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
      true,
      "adamw-b",
    );
    const oa = createAdamW([a], { weightDecay: 0.01 });
    const ob = createAdamW([b], { weightDecay: 0.01 });
    const grad = tf.tensor2d([
      [0.1, -0.2],
      [0.3, 0.4],
    ]);
    oa.apply([grad], 0.1);
    oa.apply([grad], 0.1);
    ob.importState(await oa.exportState());
    b.assign(a);
    const before = tf.memory().numTensors;
    oa.apply([grad], 0.05);
    ob.apply([grad], 0.05);
    expect(tf.memory().numTensors).toBe(before);
    expect(Array.from(await b.data())).toEqual(Array.from(await a.data()));
    expect(() => ob.importState({ step: 1, m: [], v: [] })).toThrow(/optimizer state/);
    for (const t of [a, b, grad]) t.dispose();
    oa.dispose();
    ob.dispose();
  });

  it("norm and bias variables get no weight decay by default", async () => {
    const n = tf.variable(tf.tensor1d([1]), true, "layer.input_layernorm.weight");
    const o = createAdamW([n], { weightDecay: 0.5 });
    const g = tf.tensor1d([0]);
    o.apply([g], 0.1);
    expect((await n.data())[0]).toBe(1);
    for (const t of [n, g]) t.dispose();
    o.dispose();
  });
});

describe("global-norm clipping", () => {
  it("matches torch.nn.utils.clip_grad_norm_", async () => {
    const g = [tf.tensor1d([3, 4]), tf.tensor1d([12])]; // norm 13
    const { norm, grads } = clipByGlobalNorm(g, 1.0);
    expect(norm).toBeCloseTo(13, 5);
    const coef = 1 / (13 + 1e-6);
    expect(Array.from(await (grads[0] as tf.Tensor).data()).map((x) => x / coef)).toEqual([
      expect.closeTo(3, 4),
      expect.closeTo(4, 4),
    ]);
    for (const t of grads) t.dispose();
    const small = [tf.tensor1d([0.1])];
    const r = clipByGlobalNorm(small, 1.0);
    expect(r.grads[0]).toBe(small[0]); // under the limit: untouched
    small[0]?.dispose();
  });
});
