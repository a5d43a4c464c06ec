import "@tensorflow/tfjs-core/dist/register_all_gradients";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { initBackend } from "../src/index.js";
import { copySlice } from "../src/wasm-kernels.js";

/** Row-major values 0, 1, 2, ... of `shape`, so every copied element says where it came from. */
function counting(shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, (_, i) => i);
}

/** x[begin : begin + size] element by element: the definition of a slice. */
function referenceSlice(x: Float32Array, shape: number[], begin: number[], size: number[]): number[] {
  const out: number[] = [];
  const strides = shape.map((_, a) => shape.slice(a + 1).reduce((p, q) => p * q, 1));
  const total = size.reduce((a, b) => a * b, 1);
  for (let i = 0; i < total; i++) {
    let rest = i;
    let offset = 0;
    for (let a = shape.length - 1; a >= 0; a--) {
      const s = size[a] as number;
      offset += ((rest % s) + (begin[a] as number)) * (strides[a] as number);
      rest = Math.floor(rest / s);
    }
    out.push(x[offset] as number);
  }
  return out;
}

const CASES: [number[], number[], number[]][] = [
  [
    [3, 97536],
    [1, 0],
    [1, 97536],
  ], // one KV head of an attention operand: contiguous
  [
    [64, 508],
    [0, 100],
    [64, 200],
  ], // a block's keys out of [d, T]: one run per row
  [[7], [2], [4]],
  [
    [5, 6, 7],
    [1, 2, 0],
    [3, 4, 7],
  ], // inner axis whole: runs of 4 * 7
  [
    [5, 6, 7],
    [0, 0, 3],
    [5, 6, 2],
  ], // innermost cut
  [
    [4, 5, 6, 7],
    [1, 0, 2, 1],
    [2, 5, 3, 5],
  ],
  [
    [4, 5, 6, 7],
    [0, 0, 0, 0],
    [4, 5, 6, 7],
  ], // everything
  [
    [4, 5, 6, 7],
    [3, 4, 5, 6],
    [1, 1, 1, 1],
  ],
  [
    [2, 3, 4, 5, 6],
    [1, 1, 0, 2, 0],
    [1, 2, 4, 3, 6],
  ], // rank 5: the stock kernel's generic path
];

describe("copySlice (the heap-view Slice kernel's copy)", () => {
  it("copies exactly the elements of the slice, for contiguous and cut shapes of rank 1 to 5", () => {
    for (const [shape, begin, size] of CASES) {
      const x = counting(shape);
      const out = new Float32Array(size.reduce((a, b) => a * b, 1));
      copySlice(x, shape, begin, size, out);
      expect([...out], `${shape} ${begin} ${size}`).toEqual(referenceSlice(x, shape, begin, size));
    }
  });
});

describe("the wasm Slice kernel replaced by initBackend", () => {
  it("gives the same values and dtype as the cpu backend for float32, int32 and bool, and empty slices", async () => {
    const results: { shape: number[]; dtype: string; values: number[] }[][] = [];
    for (const backend of ["cpu", "wasm"] as const) {
      await initBackend({ backend });
      const before = tf.memory().numTensors;
      const got: { shape: number[]; dtype: string; values: number[] }[] = [];
      for (const [shape, begin, size] of CASES) {
        for (const dtype of ["float32", "int32", "bool"] as const) {
          const values = counting(shape).map((v) => (dtype === "bool" ? v % 3 === 0 : v) as number);
          const s = tf.tidy(() => tf.slice(tf.tensor(values, shape, dtype), begin, size));
          got.push({ shape: s.shape, dtype: s.dtype, values: [...(await s.data())] });
          s.dispose();
        }
      }
      const empty = tf.tidy(() => tf.slice(tf.ones([3, 4]), [1, 0], [0, 4]));
      got.push({ shape: empty.shape, dtype: empty.dtype, values: [...(await empty.data())] });
      empty.dispose();
      expect(tf.memory().numTensors).toBe(before);
      results.push(got);
    }
    expect(tf.getBackend()).toBe("wasm");
    expect(results[1]).toEqual(results[0]);
  });

  it("reads the heap after the output is allocated, so a slice that grows the heap is still right", async () => {
    await initBackend({ backend: "wasm" });
    // Allocate enough that the output's allocation may grow the heap (which detaches views taken before it).
    const x = tf.tensor2d(counting([2048, 1024]), [2048, 1024]);
    const s = tf.slice(x, [512, 0], [1024, 1024]);
    const v = await s.data();
    expect(v[0]).toBe(512 * 1024);
    expect(v[v.length - 1]).toBe(1536 * 1024 - 1);
    tf.dispose([x, s]);
  });

  it("refuses a slice that reaches past the tensor, as the cpu backend does (the stock kernel copied on)", async () => {
    await initBackend({ backend: "wasm" });
    const x = tf.ones([2, 3]);
    expect(() => tf.slice(x, [1, 0], [2, 3])).toThrow(/slice/i);
    x.dispose();
  });
});

describe("the wasm Identity kernel replaced by initBackend (tf.clone, tape saves)", () => {
  it("a clone keeps its values after the original is disposed, and both free their memory", async () => {
    await initBackend({ backend: "wasm" });
    const before = tf.engine().backend.numDataIds();
    const x = tf.tensor2d(counting([3, 5]), [3, 5]);
    const y = tf.clone(x);
    x.dispose();
    expect([...(await y.data())]).toEqual([...counting([3, 5])]);
    y.dispose();
    expect(tf.engine().backend.numDataIds()).toBe(before);
  });

  it("a clone of a variable keeps the old values when the variable is assigned", async () => {
    await initBackend({ backend: "wasm" });
    const v = tf.variable(tf.tensor1d([1, 2, 3]));
    const c = tf.clone(v);
    v.assign(tf.tensor1d([7, 8, 9]));
    expect([...(await c.data())]).toEqual([1, 2, 3]);
    expect([...(await v.data())]).toEqual([7, 8, 9]);
    tf.dispose([v, c]);
  });

  it("custom gradients that save their inputs still give the analytic gradient", async () => {
    await initBackend({ backend: "wasm" });
    // f(x) = sum(x^3) through a custom op that saves x (the tape clones it): df/dx = 3 x^2.
    const cube = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const x = args[0] as tf.Tensor;
      const save = args[1] as tf.GradSaveFunc;
      save([x]);
      return {
        value: tf.pow(x, 3),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.mul(dy, tf.mul(3, tf.square(saved[0] as tf.Tensor))),
      };
    });
    const x = tf.tensor1d([1, -2, 0.5]);
    const g = tf.grad((t: tf.Tensor) => tf.sum(cube(t) as tf.Tensor))(x);
    expect([...(await g.data())]).toEqual([3, 12, 0.75]);
    tf.dispose([x, g]);
  });
});
