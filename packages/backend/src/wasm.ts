import os from "node:os";
import { HippoError, isHippoError } from "@hippocrates/core";
import { getThreadsCount, setThreadsCount, version_wasm } from "@tensorflow/tfjs-backend-wasm";
import * as tf from "@tensorflow/tfjs-core";
import { activateTfBackend } from "./activate.js";
import { MAX_WASM_THREADS } from "./options.js";
import type { BackendInfo } from "./types.js";
import { installWasmKernels } from "./wasm-kernels.js";
import {
  removeNewListeners,
  type ThreadedWasmFiles,
  threadSupportProblem,
  withNodePthreads,
} from "./wasm-node-threads.js";

export const WASM_PACKAGE = "@tensorflow/tfjs-backend-wasm";

/** Every core this process may run on, capped at the build's pthread pool. */
export function defaultWasmThreads(): number {
  const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  return Math.max(1, Math.min(cores, MAX_WASM_THREADS));
}

export interface WasmRequest {
  threads: number | undefined;
  simd: boolean | undefined;
  /** Where the thread count came from (for `reason`). */
  threadsSource: string;
}

/** What initWasm built; the module is instantiated once per process, so its threads are fixed from then on. */
let built: BackendInfo | null = null;

/** True when tfjs already created the wasm backend (then its thread count can no longer change). */
function existingWasm(): boolean {
  return tf.engine().registry.wasm !== undefined;
}

function checkSameBuild(have: BackendInfo, req: WasmRequest): void {
  if (req.threads !== undefined && req.threads !== have.threads) {
    throw new HippoError("UNSUPPORTED", "the wasm backend's thread count is fixed once per process", {
      key: req.threadsSource,
      expected: `${have.threads} (already running) or a new process`,
      got: String(req.threads),
    });
  }
  if (req.simd !== undefined && req.simd !== have.simd) {
    throw new HippoError("UNSUPPORTED", "the wasm backend's SIMD build is fixed once per process", {
      key: "options.simd",
      expected: `${have.simd} (already running) or a new process`,
      got: String(req.simd),
    });
  }
}

/**
 * Cancels tfjs's pending (hung or failed) initialisation of "wasm" and registers the same factory again, so
 * the backend can be started once more, with other settings.
 */
function resetWasmRegistration(): void {
  const factory = tf.findBackendFactory("wasm");
  if (factory === null) return;
  tf.removeBackend("wasm");
  tf.registerBackend("wasm", factory, WASM_PRIORITY);
}

/** The priority tfjs-backend-wasm registers with (above cpu's 1). */
const WASM_PRIORITY = 2;

async function startSingleThread(tried: string): Promise<void> {
  const before = {
    uncaughtException: process.listeners("uncaughtException"),
    unhandledRejection: process.listeners("unhandledRejection"),
  };
  try {
    await activateTfBackend("wasm", tried);
  } finally {
    removeNewListeners(before);
  }
}

/**
 * Starts the wasm backend. Without an explicit thread count, a threaded build that cannot start falls back
 * to the single-thread SIMD build and says why in `reason`; an explicit count that cannot start throws.
 * `files` overrides where the threaded build's scripts are (tests use it to make the start fail).
 * Also replaces the stock kernels that wasm-kernels.ts makes faster (same results).
 */
export async function initWasm(
  req: WasmRequest,
  prefix: string,
  files?: ThreadedWasmFiles,
): Promise<BackendInfo> {
  installWasmKernels();
  const simdAvailable = (await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT")) === true;
  if (req.simd === true && !simdAvailable) {
    throw new HippoError("BACKEND_UNAVAILABLE", "WebAssembly SIMD was asked for but this runtime lacks it", {
      key: "options.simd",
    });
  }
  const simd = req.simd ?? simdAvailable;
  const info = (threads: number, reason: string): BackendInfo => ({
    name: "wasm",
    tfBackend: "wasm",
    threads,
    simd,
    package: WASM_PACKAGE,
    version: version_wasm,
    reason: `${prefix}${reason}`,
  });

  if (built !== null) {
    checkSameBuild(built, req);
    await activateTfBackend("wasm", "wasm (created earlier in this process)");
    return built;
  }
  if (existingWasm()) {
    // Someone ran tf ops (or tf.ready) before initBackend: tfjs created the backend with its own settings.
    await activateTfBackend("wasm", "wasm (already created)");
    const threads = getThreadsCount();
    built = info(
      threads,
      `wasm backend was created before initBackend (tfjs defaults), ${threads} thread(s)`,
    );
    checkSameBuild(built, req);
    return built;
  }

  let threads = req.threads ?? defaultWasmThreads();
  let why =
    req.threads === undefined
      ? `${threads} thread(s) = usable cores`
      : `${threads} thread(s) from ${req.threadsSource}`;
  if (threads > 1 && !simd) {
    if (req.threads !== undefined) {
      throw new HippoError("INVALID_ARGUMENT", "tfjs-backend-wasm has no threaded build without SIMD", {
        key: req.threadsSource,
        expected: "threads = 1 when simd is false",
        got: String(threads),
      });
    }
    threads = 1;
    why = "1 thread: the only threaded build needs SIMD";
  }
  const threadProblem = threads > 1 ? threadSupportProblem(files) : null;
  if (threadProblem !== null) {
    if (req.threads !== undefined) {
      throw new HippoError(
        "BACKEND_UNAVAILABLE",
        `wasm with ${threads} threads is unavailable: ${threadProblem}`,
        {
          key: req.threadsSource,
          expected: "1 (the single-thread build)",
          got: String(threads),
        },
      );
    }
    threads = 1;
    why = `1 thread: threaded build unavailable (${threadProblem})`;
  }

  if (threads > 1) {
    const tried = `wasm threaded-SIMD build with ${threads} threads`;
    tf.env().set("WASM_HAS_SIMD_SUPPORT", true);
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", true);
    setThreadsCount(threads);
    try {
      await withNodePthreads(threads, () => activateTfBackend("wasm", tried), files);
    } catch (e) {
      resetWasmRegistration();
      const problem = isHippoError(e) ? e.reason : e instanceof Error ? e.message : String(e);
      if (req.threads !== undefined) {
        throw new HippoError(
          "BACKEND_UNAVAILABLE",
          `${tried} failed to start: ${problem}; threads: 1 (HIPPO_THREADS=1) runs the single-thread build`,
          { key: req.threadsSource, cause: e },
        );
      }
      threads = 1;
      why = `1 thread: the threaded build failed to start (${problem})`;
    }
  }
  const build = threads > 1 ? "threaded-SIMD" : simd ? "SIMD" : "plain";
  if (threads === 1) {
    tf.env().set("WASM_HAS_SIMD_SUPPORT", simd);
    tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
    setThreadsCount(1);
    await startSingleThread(`wasm ${build} build with 1 thread`);
  }
  const actual = getThreadsCount();
  if (actual !== threads) {
    throw new HippoError(
      "BACKEND_UNAVAILABLE",
      `wasm ${build} build: XNNPACK started a different thread pool`,
      {
        expected: `${threads} thread(s)`,
        got: `${actual}`,
      },
    );
  }
  built = info(actual, `${build} build, ${why}`);
  return built;
}
