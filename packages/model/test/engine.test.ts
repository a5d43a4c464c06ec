/**
 * The tfjs internals this package relies on (src/engine.ts). The first test fails as soon as another tfjs-core
 * is installed, listing what to re-check; the others check each assumption's behaviour on the installed one.
 */
import { backendInfo } from "@hippocrates/backend";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import {
  ENGINE_ASSUMPTIONS,
  isRecording,
  PREFIX_ALIGNMENT,
  storageOf,
  TFJS_CORE_VERSION,
  TFJS_WASM_VERSION,
  wasmHeapBytes,
  withOuterTape,
} from "../src/engine.js";
import "../src/gradients.js";
import { setup } from "./helpers.js";

beforeAll(setup);

describe("tfjs engine internals (src/engine.ts)", () => {
  it("are written against the installed tfjs-core and tfjs-backend-wasm versions", () => {
    const info = backendInfo();
    expect(info?.package).toBe("@tensorflow/tfjs-backend-wasm");
    const wasm = info?.version ?? "none";
    const message = (installed: string, pinned: string) =>
      `installed ${installed}, engine.ts written against ${pinned}: re-check in src/engine.ts:\n- ${ENGINE_ASSUMPTIONS.join("\n- ")}\nthen update the pinned versions`;
    expect(tf.version_core, message(tf.version_core, TFJS_CORE_VERSION)).toBe(TFJS_CORE_VERSION);
    expect(wasm, message(wasm, TFJS_WASM_VERSION)).toBe(TFJS_WASM_VERSION);
  });

  it("isRecording is true inside tf.grads and false outside it and inside an op's own forward", () => {
    const seen: Record<string, boolean> = {};
    seen.outside = isRecording();
    const x = tf.scalar(2);
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      seen.insideOp = isRecording();
      const a = args[0] as tf.Tensor;
      return { value: tf.mul(a, a), gradFunc: (dy: tf.Tensor) => tf.mul(dy, tf.mul(a, 2)) };
    });
    const [g] = tf.grads((a: tf.Tensor) => {
      seen.taped = isRecording();
      return f(a) as tf.Tensor;
    })([x]);
    expect(seen).toEqual({ outside: false, insideOp: false, taped: true });
    expect(g?.dataSync()[0]).toBe(4);
    tf.dispose([x, g as tf.Tensor]);
  });

  it("withOuterTape lets a nested tf.grads run inside a custom gradient (gradient checkpointing)", () => {
    const x = tf.scalar(3);
    const before = tf.memory().numTensors;
    const cube = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const a = args[0] as tf.Tensor;
      (args[1] as tf.GradSaveFunc)([a]);
      return {
        value: tf.mul(a, tf.mul(a, a)),
        // recompute a^3 under a nested tape in the backward pass, as checkpointing does
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          withOuterTape(() =>
            tf.grads((b: tf.Tensor) => tf.mul(b, tf.mul(b, b)))([saved[0] as tf.Tensor], dy),
          ),
      };
    });
    const [g] = tf.grads((a: tf.Tensor) => tf.mul(cube(a) as tf.Tensor, 2))([x]);
    expect(g?.dataSync()[0]).toBeCloseTo(2 * 3 * 9, 4);
    g?.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it("storageOf changes when a variable is assigned, and only then", () => {
    const v = tf.variable(tf.tensor1d([1, 2]));
    const first = storageOf(v);
    expect(storageOf(v)).toBe(first);
    tf.tidy(() => v.assign(tf.tensor1d([3, 4])));
    expect(storageOf(v)).not.toBe(first);
    v.dispose();
  });

  it("wasmHeapBytes reads the WebAssembly heap", () => {
    expect(wasmHeapBytes()).toBeGreaterThan(0);
  });

  it("softmax ignores masked entries appended after an aligned row (the prefix-reuse invariant)", () => {
    // Random rows of every aligned length up to 8 * PREFIX_ALIGNMENT, each extended by masked entries
    // (-1e9, as step.ts masks): the real entries' probabilities must keep every bit.
    let s = 17;
    const next = () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return (s / 2147483648) * 8 - 4;
    };
    let rows = 0;
    let unaligned = 0;
    for (let n = PREFIX_ALIGNMENT; n <= 8 * PREFIX_ALIGNMENT; n += PREFIX_ALIGNMENT) {
      for (const extra of [1, 3, 7, 50]) {
        const x = Float32Array.from({ length: n }, next);
        const longer = new Float32Array(n + extra).fill(-1e9);
        longer.set(x);
        const a = tf.tidy(() => tf.softmax(tf.tensor2d(x, [1, n])).dataSync());
        const b = tf.tidy(() => tf.softmax(tf.tensor2d(longer, [1, n + extra])).dataSync());
        expect(Array.from(b.subarray(0, n))).toEqual(Array.from(a));
        rows++;
        // The same with an unaligned short row is not exact in general (why the alignment exists).
        const y = x.subarray(0, n - 1);
        const c = tf.tidy(() => tf.softmax(tf.tensor2d(y, [1, n - 1])).dataSync());
        const d = tf.tidy(() => {
          const e = new Float32Array(n - 1 + extra).fill(-1e9);
          e.set(y);
          return tf.softmax(tf.tensor2d(e, [1, n - 1 + extra])).dataSync();
        });
        if (c.some((v, i) => v !== d[i])) unaligned++;
      }
    }
    expect(rows).toBe(32);
    expect(unaligned).toBeGreaterThan(0);
  });
});
