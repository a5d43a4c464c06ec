/**
 * The model's ways of doing less work give the numbers of the full computation: the lm_head only on scored
 * rows, and responses that share one copy of their prompt (parent segments).
 */
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRandomModel, loadModel } from "../src/io.js";
import type { CausalLM } from "../src/llama.js";
import { addLoraAdapter, deleteAdapter } from "../src/lora.js";
import { maxAbsDiff, setup, smallLlamaConfig, TINY } from "./helpers.js";

let tiny: CausalLM;
beforeAll(async () => {
  await setup();
  tiny = await loadModel(TINY);
});
afterAll(() => tiny?.dispose());

const IDS = [
  [1, 17, 250, 33, 5, 480, 77, 2],
  [1, 9, 9, 300, 41, 12, 3, 60],
];

function hiddenOf(m: CausalLM, ids: number[][]): tf.Tensor2D {
  const { hidden } = m.forward(ids, { logits: "none", outputHidden: true });
  return tf.reshape(hidden as tf.Tensor3D, [-1, m.dims.hidden]);
}

describe("only scored rows reach the lm_head (tokenLogProbs)", () => {
  it("never reads unscored rows: NaN there leaves values and gradients finite and equal", () => {
    for (const full of [false, true]) {
      tiny.setFullFineTuning(full);
      if (!full) {
        addLoraAdapter(tiny, { r: 2, alpha: 4, targetModules: ["v_proj", "up_proj"] }, { name: "probe" });
        for (const b of tiny.adapters.get("probe")?.b.values() ?? [])
          tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.3, "float32", 2)));
      }
      // LoRA (frozen head: the fused gradient) or every weight (trainable head)
      const vars = tiny.trainableVariables();
      const targets = [
        -100, 250, -100, -100, 480, -100, -100, -100, -100, -100, -100, 300, -100, -100, -100, -100,
      ];
      const nanRows = tf.tensor1d(targets.map((t) => (t < 0 ? Number.NaN : 0)));
      const run = (poison: boolean) =>
        tf.tidy(() => {
          const { value, grads } = tf.variableGrads(() => {
            let h = hiddenOf(tiny, IDS);
            // NaN in every unscored row: a head that read them would spread NaN into its outputs or gradients
            if (poison) h = tf.add(h, tf.reshape(nanRows, [-1, 1]));
            const lp = tiny.tokenLogProbs(h, targets);
            return tf.sum(tf.mul(lp, tf.range(1, targets.length + 1))) as tf.Scalar;
          }, vars);
          return [value, ...Object.values(grads)];
        });
      const clean = run(false).map((t) => Array.from(t.dataSync()));
      const poisoned = run(true).map((t) => Array.from(t.dataSync()));
      for (const g of poisoned) for (const x of g) expect(Number.isFinite(x)).toBe(true);
      poisoned.forEach((g, k) => {
        expect(maxAbsDiff(g, clean[k] as number[])).toBe(0);
      });
      // ... which only holds because the NaN rows are never read: a full-logits head gives NaN here.
      expect(
        Number.isNaN(
          tf.tidy(
            () =>
              tf.sum(tiny.lmHead(tf.add(hiddenOf(tiny, IDS), tf.reshape(nanRows, [-1, 1])))).dataSync()[0],
          ),
        ),
      ).toBe(true);
      if (!full) deleteAdapter(tiny, "probe");
    }
    tiny.setFullFineTuning(false);
  });

  it("explicit rows may repeat: values equal the aligned call, gradients add up over the repeats", () => {
    const m = createRandomModel(
      smallLlamaConfig({ vocab_size: 320, num_hidden_layers: 1, tie_word_embeddings: true }),
      { seed: 4 },
    );
    addLoraAdapter(m, { r: 2, alpha: 4, targetModules: ["q_proj", "down_proj"] });
    for (const b of m.adapters.get("default")?.b.values() ?? [])
      tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.3, "float32", 2)));
    const vars = m.trainableVariables();
    const ids = [[1, 17, 250, 33, 5, 180, 77, 2]];
    // Row 3 predicts two tokens (as a prompt's last token predicts both responses' first tokens).
    const rows = [3, 5, 3, 6];
    const targets = [5, 77, 40, 2];
    const gradsOf = (f: (h: tf.Tensor2D) => tf.Tensor1D) =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(f(hiddenOf(m, ids))) as tf.Scalar, vars);
        return [value, ...vars.map((v) => grads[v.name] as tf.Tensor)];
      });
    const withRows = gradsOf((h) => m.tokenLogProbs(h, targets, rows));
    // The same sum as two aligned calls (each row at most once per call).
    const aligned = gradsOf((h) => {
      const first = [-100, -100, -100, 5, -100, 77, 2, -100];
      const second = [-100, -100, -100, 40, -100, -100, -100, -100];
      return tf.reshape(tf.add(tf.sum(m.tokenLogProbs(h, first)), tf.sum(m.tokenLogProbs(h, second))), [1]);
    });
    withRows.forEach((t, k) => {
      const a = t.dataSync();
      const b = (aligned[k] as tf.Tensor).dataSync();
      let scale = 0;
      for (const x of b) scale = Math.max(scale, Math.abs(x));
      expect(maxAbsDiff(a, b)).toBeLessThanOrEqual(1e-5 * scale + 1e-7);
    });
    expect(Math.abs(withRows[0]?.dataSync()[0] as number)).toBeGreaterThan(1);
    tf.dispose([...withRows, ...aligned]);
    expect(() => m.tokenLogProbs(tf.zeros([8, 32]), [1, 2], [0])).toThrow(/rows/);
    m.dispose();
  });
});

describe("parent segments (one prompt copy shared by its responses)", () => {
  it("each response's hidden states equal a separate forward of prompt + response", () => {
    const prompt = [1, 17, 250, 33, 5];
    const chosen = [480, 77, 2];
    const rejected = [300, 41, 12, 3];
    const other = [9, 9, 60, 7]; // a second document packed in the same row
    const row = [...prompt, ...chosen, ...rejected, ...other];
    const seg = [
      ...prompt.map(() => 0),
      ...chosen.map(() => 1),
      ...rejected.map(() => 2),
      ...other.map(() => 3),
    ];
    const parent = [
      ...prompt.map(() => 0),
      ...chosen.map(() => 0),
      ...rejected.map(() => 0),
      ...other.map(() => 3),
    ];
    const pos = [
      ...prompt.map((_, i) => i),
      ...chosen.map((_, i) => prompt.length + i),
      ...rejected.map((_, i) => prompt.length + i),
      ...other.map((_, i) => i),
    ];
    for (const explicit of [true, false]) {
      const { hidden } = tiny.forward([row], {
        segmentIds: [seg],
        parentSegmentIds: [parent],
        positionIds: explicit ? [pos] : undefined, // default positions continue the parent's
        logits: "none",
        outputHidden: true,
      });
      const h = (hidden as tf.Tensor3D).dataSync();
      const E = tiny.dims.hidden;
      const part = (from: number, n: number) => Array.from(h.subarray(from * E, (from + n) * E));
      const alone = (ids: number[]) => Array.from(tf.tidy(() => hiddenOf(tiny, [ids]).dataSync()));
      const p = prompt.length;
      const c = chosen.length;
      const r = rejected.length;
      const sepChosen = alone([...prompt, ...chosen]);
      const sepRejected = alone([...prompt, ...rejected]);
      expect(maxAbsDiff(part(0, p), sepChosen.slice(0, p * E))).toBeLessThan(2e-5);
      expect(maxAbsDiff(part(p, c), sepChosen.slice(p * E))).toBeLessThan(2e-5);
      expect(maxAbsDiff(part(p + c, r), sepRejected.slice(p * E))).toBeLessThan(2e-5);
      expect(maxAbsDiff(part(p + c + r, other.length), alone(other))).toBeLessThan(2e-5);
      // Without the parent link, the responses would not see the prompt: different numbers.
      const { hidden: unlinked } = tiny.forward([row], {
        segmentIds: [seg],
        positionIds: [pos],
        logits: "none",
        outputHidden: true,
      });
      const u = (unlinked as tf.Tensor3D).dataSync();
      expect(maxAbsDiff(Array.from(u.subarray(p * E, (p + c) * E)), sepChosen.slice(p * E))).toBeGreaterThan(
        1e-3,
      );
      tf.dispose([hidden as tf.Tensor, unlinked as tf.Tensor]);
    }
  });
});
