/**
 * The wasm thread count is fixed once per process, so each configuration runs in a child process
 * (test/fixtures/matmul-child.ts via tsx). This also checks that a plain script using the threaded build
 * exits by itself: the pthread workers must not keep the event loop alive.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import type { BackendInfo, BackendOptions } from "../src/index.js";
import { describeBackend, initBackend } from "../src/index.js";
import { seededMatrix } from "./fixtures/matrices.js";

interface ChildResult {
  info: BackendInfo;
  values: string;
  tensorsLeaked: number;
  wall: number;
  processCpu: number;
  mainCpu: number | null;
}

const packageDir = fileURLToPath(new URL("..", import.meta.url));
const child = fileURLToPath(new URL("./fixtures/matmul-child.ts", import.meta.url));

function runChild(env: Record<string, string>, options?: BackendOptions): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    // `--import tsx` resolves tsx from the package folder upwards (the workspace root has it).
    const proc = spawn(
      process.execPath,
      ["--import", "tsx", child, ...(options ? [JSON.stringify(options)] : [])],
      {
        cwd: packageDir,
        env: { ...process.env, HIPPO_BACKEND: "", HIPPO_THREADS: "", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    let err = "";
    proc.stdout.on("data", (d: Buffer) => {
      out += d.toString();
    });
    proc.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    // A child that hangs after printing its result has a worker keeping it alive.
    const timer = setTimeout(() => proc.kill("SIGKILL"), 90_000);
    proc.on("close", (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`child ${JSON.stringify(env)} exited with ${code ?? signal}: ${err.slice(-2000)}`));
        return;
      }
      const line = out.trim().split("\n").at(-1) ?? "";
      resolve(JSON.parse(line) as ChildResult);
    });
  });
}

function decode(values: string): Float32Array {
  const bytes = Buffer.from(values, "base64");
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** max |x - ref| / max |ref|: the error relative to the result's scale, robust to entries near zero. */
function relativeError(x: Float32Array, ref: Float32Array): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs((x[i] ?? Number.NaN) - (ref[i] ?? Number.NaN)));
    scale = Math.max(scale, Math.abs(ref[i] ?? 0));
  }
  return diff / scale;
}

describe("wasm threads (child processes)", () => {
  let one: ChildResult;
  let two: ChildResult;
  let plain: ChildResult;
  let reference: Float32Array;

  beforeAll(async () => {
    // Sequential: on a 2-core machine two children at once would measure each other.
    one = await runChild({ HIPPO_THREADS: "1" });
    two = await runChild({ HIPPO_THREADS: "2" });
    plain = await runChild({}, { backend: "wasm", simd: false });
    // The same product on the plain JavaScript backend, in this process.
    await initBackend({ backend: "cpu" });
    const product = tf.tidy(() => tf.matMul(seededMatrix(96, 257, 1), seededMatrix(257, 130, 2)));
    reference = (await product.data()) as Float32Array;
    product.dispose();
  }, 240_000);

  it("runs the SIMD build with 1 thread and the threaded-SIMD build with 2, and both exit by themselves", () => {
    expect(one.info).toMatchObject({ name: "wasm", tfBackend: "wasm", threads: 1, simd: true });
    expect(one.info.reason).toContain("SIMD build, 1 thread(s) from HIPPO_THREADS");
    expect(two.info).toMatchObject({ name: "wasm", tfBackend: "wasm", threads: 2, simd: true });
    expect(two.info.reason).toContain("threaded-SIMD build, 2 thread(s) from HIPPO_THREADS");
    expect(one.tensorsLeaked).toBe(0);
    expect(two.tensorsLeaked).toBe(0);
  });

  it("matches the cpu backend within 1e-4 of the result's scale, with 1 and 2 threads", () => {
    // fp32 sums of k = 257 products in [-1, 1]: each backend's rounding error is at most ~k * 2^-24 of
    // sum |a||b| (worst case 1.5e-5, typically ~sqrt(k) * 2^-24 = 1e-6) and the orders of summation differ
    // (XNNPACK's SIMD tiles vs the cpu backend's loop); a wrong kernel or layout gives errors of order 1.
    expect(relativeError(decode(one.values), reference)).toBeLessThan(1e-4);
    expect(relativeError(decode(two.values), reference)).toBeLessThan(1e-4);
  });

  it("runs the non-SIMD build when simd is false (one thread: there is no threaded non-SIMD build)", () => {
    expect(plain.info).toMatchObject({ name: "wasm", threads: 1, simd: false });
    expect(plain.info.reason).toContain("plain build, 1 thread: the only threaded build needs SIMD");
    expect(describeBackend(plain.info)).toBe("wasm (no SIMD, 1 thread) @tensorflow/tfjs-backend-wasm 4.22.0");
    expect(relativeError(decode(plain.values), reference)).toBeLessThan(1e-4);
  });

  it("gives bit-identical results with 1 and 2 threads", () => {
    // The threads split the output into tiles; every element is still summed by one microkernel in the same
    // order, so threading must not change a single bit.
    expect(two.values).toBe(one.values);
  });

  it("really computes on the second thread", () => {
    // Wall-clock speed-ups are noisy on a shared 2-core machine; the CPU time that threads other than the main
    // one spend on the GEMM loop is not: ~half of it with 2 threads, next to nothing (GC) with 1.
    if (one.mainCpu === null || two.mainCpu === null) return; // no /proc (not Linux)
    const otherShare = (r: ChildResult) => (r.processCpu - (r.mainCpu ?? 0)) / r.processCpu;
    expect(otherShare(one)).toBeLessThan(0.2);
    expect(otherShare(two)).toBeGreaterThan(0.3);
  });
});
