/**
 * The building blocks against expected/ops.safetensors (torch fp32 ground truth; bf16/f16 inputs widened
 * exactly): GEMM through our [in, out] linear layout, RMSNorm, softmax, SiLU-gate product, residual add and
 * the embedding lookup. Tolerances: fp32 summation-order differences, ~1e-7 relative per accumulated term;
 * 1e-5 relative to the largest output (plus 1e-6) holds with margin, while a layout or formula slip is O(1).
 */
import { readFile } from "node:fs/promises";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { transposeMatrix } from "../src/index.js";
import { embedding, linear, rmsNorm, silu } from "../src/ops.js";
import { maxAbs, maxAbsDiff, readReference, setup, TINY } from "./helpers.js";

type Ref = Map<string, { shape: number[]; data: Float32Array }>;
let ref: Ref;
let meta: {
  cases: { name: string; m: number; n: number; k: number; bias: boolean }[];
  rmsnorm_cases: { name: string; rows: number; e: number; eps: number }[];
  softmax_cases: { name: string; rows: number; n: number }[];
  elementwise_cases: { name: string; kind: string; rows: number; cols: number }[];
  embedding_cases: { name: string; vocab: number; e: number }[];
};

beforeAll(async () => {
  await setup();
  ref = await readReference(`${TINY}/expected/ops.safetensors`);
  meta = JSON.parse(await readFile(`${TINY}/expected/ops_meta.json`, "utf8"));
});

const get = (k: string): Float32Array => {
  const t = ref.get(k);
  if (t === undefined) throw new Error(`missing ${k}`);
  return t.data;
};

function close(got: Float32Array, want: Float32Array, what: string): void {
  const tol = 1e-5 * maxAbs(want) + 1e-6;
  const diff = maxAbsDiff(got, want);
  expect(diff, `${what}: ${diff} > ${tol}`).toBeLessThanOrEqual(tol);
}

describe("ops vs torch references", () => {
  it("GEMM cases through the [in, out] linear layout (incl. bias, odd tails, f16/bf16 weights)", () => {
    expect(meta.cases.length).toBe(10);
    const before = tf.memory().numTensors;
    for (const c of meta.cases) {
      const y = tf.tidy(() => {
        const a = tf.tensor2d(get(`${c.name}.a`), [c.m, c.k]);
        // HF weight [N, K] -> our [K, N]
        const w = tf.tensor2d(transposeMatrix(get(`${c.name}.b`), c.n, c.k), [c.k, c.n]);
        const out = linear(a, w);
        return (c.bias ? tf.add(out, tf.tensor1d(get(`${c.name}.bias`))) : out).dataSync() as Float32Array;
      });
      close(y, get(`${c.name}.c`), c.name);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  it("RMSNorm (fp32, bf16 inputs, large eps), softmax, silu(gate) * up, add, embedding", () => {
    for (const c of meta.rmsnorm_cases) {
      const y = tf.tidy(
        () =>
          rmsNorm(
            tf.tensor2d(get(`${c.name}.x`), [c.rows, c.e]),
            tf.tensor1d(get(`${c.name}.weight`)),
            c.eps,
          ).dataSync() as Float32Array,
      );
      close(y, get(`${c.name}.y`), c.name);
    }
    for (const c of meta.softmax_cases) {
      const y = tf.tidy(
        () => tf.softmax(tf.tensor2d(get(`${c.name}.x`), [c.rows, c.n])).dataSync() as Float32Array,
      );
      close(y, get(`${c.name}.y`), c.name);
    }
    for (const c of meta.elementwise_cases) {
      const y = tf.tidy(() => {
        const shape: [number, number] = [c.rows, c.cols];
        if (c.kind === "silu_mul") {
          return tf
            .mul(silu(tf.tensor2d(get(`${c.name}.gate`), shape)), tf.tensor2d(get(`${c.name}.up`), shape))
            .dataSync() as Float32Array;
        }
        return tf
          .add(tf.tensor2d(get(`${c.name}.a`), shape), tf.tensor2d(get(`${c.name}.b`), shape))
          .dataSync() as Float32Array;
      });
      close(y, get(`${c.name}.y`), c.name);
    }
    for (const c of meta.embedding_cases) {
      const y = tf.tidy(
        () =>
          embedding(
            tf.tensor2d(get(`${c.name}.weight`), [c.vocab, c.e]),
            tf.tensor1d(Array.from(get(`${c.name}.ids`)), "int32"),
          ).dataSync() as Float32Array,
      );
      expect(y).toEqual(get(`${c.name}.y`)); // a lookup of exactly widened bf16: bit-exact
    }
  });
});
