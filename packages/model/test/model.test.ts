/**
 * Behaviour of the forward pass beyond the references: KV cache, padding, packed segments, Mistral's sliding
 * window, and tensor hygiene. All comparisons are fp32 against fp32 computed in another order (cache vs
 * full, batch vs single), so they agree to ~1e-6; 2e-5 leaves room without hiding a masking error (those
 * change logits by 1e-2 or more on these models).
 */
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { type CausalLM, createRandomModel, disposeCache, expandCache, loadModel } from "../src/index.js";
import { maxAbsDiff, setup, smallMistralConfig, TINY } from "./helpers.js";

const TOL = 2e-5;
let model: CausalLM;

beforeAll(async () => {
  await setup();
  model = await loadModel(TINY);
});

function logitsOf(m: CausalLM, ids: number[][], opts: Parameters<CausalLM["forward"]>[1] = {}): Float32Array {
  const { logits } = m.forward(ids, opts);
  const data = logits?.dataSync() as Float32Array;
  logits?.dispose();
  return data;
}

/** Rows [from, to) of a [T, V] block of row b in [B, T, V] logits. */
function rows(data: Float32Array, T: number, V: number, b: number, from: number, to: number): Float32Array {
  return data.slice((b * T + from) * V, (b * T + to) * V);
}

const A = [1, 57, 300, 4, 128, 499, 42, 42, 7, 260];
const Bseq = [1, 33, 210, 5, 77, 301];

describe("forward", () => {
  it("KV-cache decoding equals the full forward (batch 2, prefill + chunk + single tokens)", () => {
    const before = tf.memory().numTensors;
    const batch = [A, [...Bseq, 9, 10, 11, 12]];
    const full = logitsOf(model, batch);
    const cache = model.createCache(2);
    const parts: Float32Array[] = [];
    const cuts = [0, 4, 7, 8, 9, 10];
    for (let i = 0; i + 1 < cuts.length; i++) {
      const chunk = batch.map((r) => r.slice(cuts[i], cuts[i + 1]));
      parts.push(logitsOf(model, chunk, { cache }));
    }
    expect(cache.length).toBe(10);
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i + 1 < cuts.length; i++) {
        const len = (cuts[i + 1] as number) - (cuts[i] as number);
        const got = rows(parts[i] as Float32Array, len, 512, b, 0, len);
        const want = rows(full, 10, 512, b, cuts[i] as number, cuts[i + 1] as number);
        expect(maxAbsDiff(got, want)).toBeLessThan(TOL);
      }
    }
    disposeCache(cache);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("a padded batch (left and right padding) equals one sequence at a time, also when decoding", () => {
    const before = tf.memory().numTensors;
    const single = [A, Bseq].map((s) => logitsOf(model, [s]));
    const T = A.length;
    const padL = [...new Array(T - Bseq.length).fill(0), ...Bseq];
    const maskL = [new Array(T).fill(1), padL.map((_, i) => (i < T - Bseq.length ? 0 : 1))];
    const left = logitsOf(model, [A, padL], { attentionMask: maskL });
    const padR = [...Bseq, ...new Array(T - Bseq.length).fill(0)];
    const maskR = [new Array(T).fill(1), padR.map((_, i) => (i < Bseq.length ? 1 : 0))];
    const right = logitsOf(model, [A, padR], { attentionMask: maskR });
    const off = T - Bseq.length;
    expect(maxAbsDiff(rows(left, T, 512, 0, 0, T), single[0] as Float32Array)).toBeLessThan(TOL);
    expect(maxAbsDiff(rows(right, T, 512, 0, 0, T), single[0] as Float32Array)).toBeLessThan(TOL);
    expect(maxAbsDiff(rows(left, T, 512, 1, off, T), single[1] as Float32Array)).toBeLessThan(TOL);
    expect(maxAbsDiff(rows(right, T, 512, 1, 0, Bseq.length), single[1] as Float32Array)).toBeLessThan(TOL);

    // Left-padded prefill, then decode a token on both rows: positions continue from the real-token count.
    const cache = model.createCache(2);
    logitsOf(model, [A, padL], { attentionMask: maskL, cache, logits: "none" });
    const step = logitsOf(model, [[5], [6]], { cache });
    const refA = logitsOf(model, [[...A, 5]]);
    const refB = logitsOf(model, [[...Bseq, 6]]);
    expect(maxAbsDiff(rows(step, 1, 512, 0, 0, 1), rows(refA, T + 1, 512, 0, T, T + 1))).toBeLessThan(TOL);
    expect(
      maxAbsDiff(
        rows(step, 1, 512, 1, 0, 1),
        rows(refB, Bseq.length + 1, 512, 0, Bseq.length, Bseq.length + 1),
      ),
    ).toBeLessThan(TOL);
    disposeCache(cache);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("packed segments equal separate forwards of each document (block-diagonal mask, positions restart)", () => {
    const docs = [
      [1, 57, 300, 4],
      [1, 128, 499, 42, 7, 260],
      [1, 33],
    ];
    const packed = docs.flat();
    const segmentIds = [docs.flatMap((d, i) => d.map(() => i))];
    const got = logitsOf(model, [packed], { segmentIds });
    let off = 0;
    for (const d of docs) {
      const want = logitsOf(model, [d]);
      expect(maxAbsDiff(rows(got, packed.length, 512, 0, off, off + d.length), want)).toBeLessThan(TOL);
      off += d.length;
    }
    // Without segment ids the later documents see the earlier ones: the outputs must differ.
    const plain = logitsOf(model, [packed]);
    expect(
      maxAbsDiff(rows(plain, packed.length, 512, 0, 4, 10), rows(got, packed.length, 512, 0, 4, 10)),
    ).toBeGreaterThan(1e-3);
  });

  it("expandCache lets several continuations share one context", () => {
    const before = tf.memory().numTensors;
    const ctx = model.createCache(1);
    logitsOf(model, [A], { cache: ctx, logits: "none" });
    const many = expandCache(ctx, 3);
    const conts = [
      [5, 6],
      [7, 8],
      [9, 10],
    ];
    const got = logitsOf(model, conts, { cache: many });
    for (let i = 0; i < 3; i++) {
      const want = logitsOf(model, [[...A, ...(conts[i] as number[])]]);
      expect(maxAbsDiff(rows(got, 2, 512, i, 0, 2), rows(want, 12, 512, 0, 10, 12))).toBeLessThan(TOL);
    }
    expect(ctx.length).toBe(10); // the source cache is untouched
    disposeCache(ctx);
    disposeCache(many);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("rejects bad input with HippoError", () => {
    expect(() => model.forward([[1, 600]])).toThrow(/token id out of range/);
    expect(() => model.forward([[1, 2], [3]])).toThrow(/same length/);
    expect(() => model.forward([[1, 2]], { attentionMask: [[1]] })).toThrow(/attentionMask/);
    const c = model.createCache(2);
    expect(() => model.forward([[1]], { cache: c })).toThrow(/cache batch/);
  });
});

describe("Mistral sliding window", () => {
  const W = 3;
  const config = smallMistralConfig(W);

  it("layer attention equals an explicit masked-attention computation (i - W < j <= i)", () => {
    const before = tf.memory().numTensors;
    const m = createRandomModel(config, { seed: 7 });
    const T = 9;
    const H = 4;
    const d = 8;
    const x = tf.randomNormal([1, T, 32], 0, 1, "float32", 3) as tf.Tensor3D;
    const got: Record<string, Float32Array> = {};
    const out = m.attentionLayer(0, x, {
      trace: (n, t) => (got[n.split(".").pop() as string] = t.dataSync() as Float32Array),
    });
    out.dispose();
    x.dispose();
    const q = got.q_rot as Float32Array; // [T, H, d]
    const k = got.k_all as Float32Array; // [Hkv, T, d]
    const v = got.v_all as Float32Array;
    const ctx = got.ctx as Float32Array; // [T, H, d]
    const expected = new Float32Array(T * H * d);
    const fullCausal = new Float32Array(T * H * d);
    for (const [target, window] of [
      [expected, W],
      [fullCausal, T + 1],
    ] as const) {
      for (let h = 0; h < H; h++) {
        const kv = Math.floor(h / 2); // repeat_kv: heads 0,1 -> kv 0; 2,3 -> kv 1
        for (let i = 0; i < T; i++) {
          const scores: number[] = [];
          const keys: number[] = [];
          for (let j = 0; j <= i; j++) {
            if (!(j > i - window)) continue; // outside the window: masked
            let s = 0;
            for (let e = 0; e < d; e++)
              s += (q[(i * H + h) * d + e] as number) * (k[(kv * T + j) * d + e] as number);
            scores.push(s / Math.sqrt(d));
            keys.push(j);
          }
          const mx = Math.max(...scores);
          const ex = scores.map((s) => Math.exp(s - mx));
          const z = ex.reduce((a, b) => a + b, 0);
          for (let e = 0; e < d; e++) {
            let acc = 0;
            keys.forEach((j, n) => {
              acc += ((ex[n] as number) / z) * (v[(kv * T + j) * d + e] as number);
            });
            target[(i * H + h) * d + e] = acc;
          }
        }
      }
    }
    expect(maxAbsDiff(ctx, expected)).toBeLessThan(1e-5);
    // The window is shorter than the sequence, so it must matter.
    expect(maxAbsDiff(ctx, fullCausal)).toBeGreaterThan(1e-3);
    m.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it("decoding with the cache past the window equals the full forward", () => {
    const m = createRandomModel(config, { seed: 8 });
    const ids = [[1, 5, 9, 13, 17, 21, 25, 29, 33]];
    const full = logitsOf(m, ids);
    const cache = m.createCache(1);
    const first = logitsOf(m, [ids[0]?.slice(0, 2) as number[]], { cache });
    expect(maxAbsDiff(first, full.slice(0, 2 * 64))).toBeLessThan(TOL);
    for (let t = 2; t < 9; t++) {
      const step = logitsOf(m, [[ids[0]?.[t] as number]], { cache });
      expect(maxAbsDiff(step, full.slice(t * 64, (t + 1) * 64))).toBeLessThan(TOL);
    }
    disposeCache(cache);
    m.dispose();
  });
});
