import { isHippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import {
  backendInfo,
  defaultWasmThreads,
  describeBackend,
  initBackend,
  memoryLimitBytes,
  resolveRequest,
} from "../src/index.js";
import { seededMatrix } from "./fixtures/matrices.js";

// One process for this file: the tests run in order and share tfjs's global engine, like an application.
describe("initBackend", () => {
  it("auto picks threaded SIMD wasm here and says so", async () => {
    expect(backendInfo()).toBeNull();
    const info = await initBackend({ backend: "auto" });
    expect(info.name).toBe("wasm");
    expect(info.tfBackend).toBe("wasm");
    expect(tf.getBackend()).toBe("wasm");
    expect(info.simd).toBe(true);
    expect(info.threads).toBe(defaultWasmThreads());
    expect(info.version).toBe("4.22.0");
    expect(describeBackend(info)).toBe(
      `wasm (SIMD, ${info.threads} thread${info.threads === 1 ? "" : "s"}) @tensorflow/tfjs-backend-wasm 4.22.0`,
    );
    expect(info.reason).toContain(
      "@tensorflow/tfjs-node-gpu not installed; @tensorflow/tfjs-node not installed",
    );
    expect(info.reason).toContain(info.threads > 1 ? "threaded-SIMD build" : "SIMD build");
    expect(backendInfo()).toBe(info);
    expect(memoryLimitBytes(info)).toBe(4294901760);
  });

  it("computes on the threaded build inside this vitest worker", async () => {
    const before = tf.memory().numTensors;
    const product = tf.tidy(() => tf.matMul(seededMatrix(64, 300, 5), seededMatrix(300, 70, 6)));
    const values = await product.data();
    product.dispose();
    expect(values.length).toBe(64 * 70);
    expect(values.every(Number.isFinite)).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("is idempotent and leaks no tensors", async () => {
    const before = tf.memory().numTensors;
    const a = await initBackend();
    const b = await initBackend({ backend: "wasm" });
    const [c, d] = await Promise.all([initBackend(), initBackend({ threads: a.threads })]);
    expect(b).toBe(a);
    expect(c).toBe(a);
    expect(d).toBe(a);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("refuses another thread count once wasm runs (threads are fixed per process)", async () => {
    const running = backendInfo()?.threads ?? 0;
    const err = await initBackend({ threads: running === 1 ? 2 : 1 }).catch((e: unknown) => e);
    expect(isHippoError(err, "UNSUPPORTED")).toBe(true);
    expect(String(err)).toContain("fixed once per process");
    expect(backendInfo()?.threads).toBe(running);
  });

  it("names a missing native backend instead of falling back", async () => {
    for (const [name, pkg] of [
      ["tensorflow", "@tensorflow/tfjs-node"],
      ["tensorflow-gpu", "@tensorflow/tfjs-node-gpu"],
    ] as const) {
      const err = await initBackend({ backend: name }).catch((e: unknown) => e);
      expect(isHippoError(err, "BACKEND_UNAVAILABLE")).toBe(true);
      expect(String(err)).toContain(`backend "${name}" is unavailable: ${pkg} is not installed`);
      expect(String(err)).toContain(`pnpm add ${pkg}@4.22.0`);
      // Nothing changed: still on wasm.
      expect(tf.getBackend()).toBe("wasm");
      expect(backendInfo()?.name).toBe("wasm");
    }
  });

  it("switches to cpu only by name, and back to the same wasm build", async () => {
    const wasm = backendInfo();
    const ref = tf.tidy(() => tf.matMul(seededMatrix(40, 50, 7), seededMatrix(50, 30, 8)));
    const onWasm = await ref.data();
    ref.dispose();

    const cpu = await initBackend({ backend: "cpu" });
    expect(cpu).toMatchObject({ name: "cpu", tfBackend: "cpu", threads: 1, simd: false });
    expect(tf.getBackend()).toBe("cpu");
    expect(describeBackend(cpu)).toBe("cpu (plain JavaScript, 1 thread) @tensorflow/tfjs-backend-cpu 4.22.0");
    expect(memoryLimitBytes(cpu)).toBeNull();
    // "auto" once something runs keeps it: auto never silently changes a backend someone asked for.
    expect(await initBackend()).toBe(cpu);
    const product = tf.tidy(() => tf.matMul(seededMatrix(40, 50, 7), seededMatrix(50, 30, 8)));
    const onCpu = await product.data();
    product.dispose();
    let diff = 0;
    let scale = 0;
    onCpu.forEach((v, i) => {
      diff = Math.max(diff, Math.abs(v - (onWasm[i] ?? Number.NaN)));
      scale = Math.max(scale, Math.abs(v));
    });
    // k = 50 fp32 products: rounding differences are ~1e-7 of the scale; see threads.test.ts.
    expect(diff / scale).toBeLessThan(1e-4);

    const back = await initBackend({ backend: "wasm" });
    expect(back).toBe(wasm);
    expect(tf.getBackend()).toBe("wasm");
  });
});

describe("resolveRequest", () => {
  it("reads HIPPO_BACKEND and HIPPO_THREADS, options first", () => {
    expect(resolveRequest({}, { HIPPO_BACKEND: "cpu", HIPPO_THREADS: "1" })).toMatchObject({
      backend: "cpu",
      threads: 1,
    });
    expect(
      resolveRequest({ backend: "wasm", threads: 2 }, { HIPPO_BACKEND: "cpu", HIPPO_THREADS: "1" }),
    ).toMatchObject({ backend: "wasm", threads: 2 });
    expect(resolveRequest({}, {})).toMatchObject({ backend: "auto", threads: undefined, simd: undefined });
    expect(resolveRequest({}, { HIPPO_BACKEND: " ", HIPPO_THREADS: "" })).toMatchObject({ backend: "auto" });
  });

  it("rejects bad values with the key, the expected and the given value", () => {
    const cases: [Parameters<typeof resolveRequest>, string][] = [
      [
        [{}, { HIPPO_BACKEND: "webgl" }],
        'key "HIPPO_BACKEND": unknown compute backend (expected one of auto',
      ],
      [
        [{}, { HIPPO_THREADS: "two" }],
        'key "HIPPO_THREADS": invalid thread count (expected an integer from 1 to 8',
      ],
      [[{}, { HIPPO_THREADS: "0" }], 'got "0"'],
      [[{ threads: 1.5 }, {}], 'key "options.threads"'],
      [[{ threads: 9 }, {}], "got 9"],
    ];
    for (const [args, message] of cases) {
      let caught: unknown;
      try {
        resolveRequest(...args);
      } catch (e) {
        caught = e;
      }
      expect(isHippoError(caught, "INVALID_CONFIG")).toBe(true);
      expect(String(caught)).toContain(message);
    }
  });
});
