import { rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isHippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, expect, it, vi } from "vitest";
import { defaultWasmThreads } from "../src/index.js";
import { initWasm } from "../src/wasm.js";
import { threadedWasmFiles } from "../src/wasm-node-threads.js";

// A glue script that throws in every pthread worker: the threaded build cannot start.
const brokenGlue = join(tmpdir(), `hippo-broken-glue-${process.pid}.js`);
writeFileSync(brokenGlue, 'throw new Error("broken glue for a test");\n');
const broken = { ...threadedWasmFiles(), glue: brokenGlue };
afterAll(() => rmSync(brokenGlue, { force: true }));

it("an explicit thread count that cannot start throws (no silent fallback)", async () => {
  const quiet = vi.spyOn(console, "warn").mockImplementation(() => {});
  const err = await initWasm(
    { threads: 2, simd: undefined, threadsSource: "HIPPO_THREADS" },
    "",
    broken,
  ).catch((e: unknown) => e);
  quiet.mockRestore();
  expect(isHippoError(err, "BACKEND_UNAVAILABLE")).toBe(true);
  expect(String(err)).toContain("wasm threaded-SIMD build with 2 threads failed to start");
  expect(String(err)).toContain("broken glue for a test");
  expect(String(err)).toContain("HIPPO_THREADS=1");
});

it.skipIf(defaultWasmThreads() < 2)(
  "the default thread count falls back to the single-thread SIMD build and says why",
  async () => {
    const info = await initWasm(
      { threads: undefined, simd: undefined, threadsSource: "default" },
      "",
      broken,
    );
    expect(info).toMatchObject({ name: "wasm", threads: 1, simd: true });
    expect(info.reason).toContain("SIMD build, 1 thread: the threaded build failed to start");
    expect(info.reason).toContain("broken glue for a test");
    expect(tf.getBackend()).toBe("wasm");
    const product = tf.tidy(() => tf.matMul(tf.ones([3, 4]), tf.ones([4, 2])));
    expect(Array.from(await product.data())).toEqual([4, 4, 4, 4, 4, 4]);
    product.dispose();
  },
);
