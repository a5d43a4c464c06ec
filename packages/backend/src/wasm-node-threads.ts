/**
 * Runs tfjs-backend-wasm's threaded-SIMD build under Node, which tfjs 4.22 disables there
 * (tensorflow/tfjs#3830). Three things stand in the way, and each is worked around here for the duration
 * of the backend's initialisation only, without touching the files in node_modules:
 *
 * 1. The flag WASM_HAS_MULTITHREAD_SUPPORT is hard-wired to false when IS_NODE; it is set to true.
 * 2. Emscripten's pthread pool creates its 8 workers with `new Worker(url)`, where tfjs's `locateFile` makes
 *    `url` a `blob:` URL that `worker_threads` rejects, and the worker is then sent the glue code as a Blob of
 *    the *bundled* factory (whose rollup helpers are not in scope in a worker). The glue assigns
 *    `globalThis.Worker = worker_threads.Worker` and then calls `new Worker(...)`, so `globalThis.Worker` is
 *    made an accessor that ignores the assignment and returns `createPthreadWorker`: it starts the same worker
 *    script tfjs would have put in the blob (shipped in wasm-out/*.worker.js) as an eval worker, and points
 *    its "load" message at the standalone emscripten glue wasm-out/tfjs-backend-wasm-threaded-simd.js, a
 *    file from the same build as the .wasm it loads.
 * 3. The C++ side caps the pool at `emscripten_num_logical_cores() / 2`, read once when the module starts;
 *    under Node that is `os.cpus().length`, so `os.cpus` reports 2 x threads while the module starts.
 *
 * The pthread workers are kept unreferenced (their `ref()` is a no-op): the main thread blocks on futexes
 * while they compute, so they never need the event loop, and a referenced worker would keep every process
 * that used the backend alive forever (XNNPACK's pool threads never exit).
 */
import { accessSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import { dirname, join } from "node:path";
import { Worker as NodeWorker } from "node:worker_threads";

const require = createRequire(import.meta.url);

export interface ThreadedWasmFiles {
  /** Emscripten's pthread worker script, as tfjs ships it (a CommonJS module exporting a string). */
  workerScript: string;
  /** The standalone emscripten glue of the threaded-SIMD build. */
  glue: string;
  /** The threaded-SIMD binary the main thread loads. */
  wasm: string;
}

export function threadedWasmFiles(): ThreadedWasmFiles {
  const root = dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json"));
  return {
    workerScript: join(root, "wasm-out", "tfjs-backend-wasm-threaded-simd.worker.js"),
    glue: join(root, "wasm-out", "tfjs-backend-wasm-threaded-simd.js"),
    wasm: join(root, "dist", "tfjs-backend-wasm-threaded-simd.wasm"),
  };
}

/** Why threads cannot work in this runtime, or null when the preconditions hold. */
export function threadSupportProblem(): string | null {
  if (typeof SharedArrayBuffer !== "function") return "SharedArrayBuffer is not available";
  try {
    // WebAssembly program using shared memory and an atomic load (wasm-feature-detect's "threads" probe).
    const probe = new Uint8Array([
      0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 5, 4, 1, 3, 1, 1, 10, 11, 1, 9, 0, 65, 0,
      254, 16, 2, 0, 26, 11,
    ]);
    // lib "ES2023" declares no WebAssembly value; Node has it.
    const wasm = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } })
      .WebAssembly;
    if (!wasm.validate(probe)) return "this runtime's WebAssembly has no threads (shared memory, atomics)";
  } catch (e) {
    return `WebAssembly threads probe failed: ${String(e)}`;
  }
  try {
    const files = threadedWasmFiles();
    const loaded: unknown = require(files.workerScript);
    const script = (loaded as { wasmWorkerContents?: unknown }).wasmWorkerContents;
    if (typeof script !== "string") return `${files.workerScript} does not export wasmWorkerContents`;
    accessSync(files.glue);
    accessSync(files.wasm);
  } catch (e) {
    return `threaded-SIMD files of @tensorflow/tfjs-backend-wasm not found: ${String(e)}`;
  }
  return null;
}

interface PatchedWorker {
  postMessage(message: unknown, transfer?: readonly unknown[]): void;
  ref(): void;
  onerror: unknown;
}

/**
 * Calls `start` (which must instantiate the wasm module) with the globals patched as described above, and
 * restores them when it settles. Rejects as soon as a pthread worker reports an error, instead of letting
 * emscripten rethrow it as an uncaught exception.
 */
export async function withNodePthreads<T>(threads: number, start: () => Promise<T>): Promise<T> {
  const files = threadedWasmFiles();
  // tfjs escapes newlines the same way before it puts this script in a Blob: the string holds "\n" escapes
  // inside string literals that must stay escapes.
  const script = (require(files.workerScript) as { wasmWorkerContents: string }).wasmWorkerContents.replace(
    /\n/g,
    "\\n",
  );

  let failWorker: (error: Error) => void = () => {};
  const workerFailed = new Promise<never>((_, reject) => {
    failWorker = reject;
  });

  function createPthreadWorker(_blobUrl: unknown): NodeWorker {
    const worker = new NodeWorker(script, { eval: true, name: "hippo-wasm-pthread" });
    const patched = worker as unknown as PatchedWorker;
    const post = worker.postMessage.bind(worker);
    patched.postMessage = (message: unknown, transfer?: readonly unknown[]) => {
      const m = message as { cmd?: unknown } | null;
      const fixed =
        m !== null && typeof m === "object" && m.cmd === "load" ? { ...m, urlOrBlob: files.glue } : m;
      post(fixed, transfer as never);
    };
    patched.ref = () => {};
    const onError = (e: unknown) => {
      failWorker(new Error(`wasm pthread worker failed: ${e instanceof Error ? e.message : String(e)}`));
    };
    // Emscripten installs `worker.on("error", e => worker.onerror(e))` with an onerror that throws.
    Object.defineProperty(worker, "onerror", { configurable: true, get: () => onError, set: () => {} });
    worker.unref();
    return worker;
  }

  const workerDescriptor = Object.getOwnPropertyDescriptor(globalThis, "Worker");
  const realCpus = os.cpus;
  const listenersBefore = {
    uncaughtException: process.listeners("uncaughtException"),
    unhandledRejection: process.listeners("unhandledRejection"),
  };
  Object.defineProperty(globalThis, "Worker", {
    configurable: true,
    get: () => createPthreadWorker,
    set: () => {},
  });
  os.cpus = () => {
    const cpus = realCpus();
    const one = cpus[0];
    return one === undefined ? cpus : Array.from({ length: 2 * threads }, () => one);
  };
  try {
    return await Promise.race([start(), workerFailed]);
  } finally {
    os.cpus = realCpus;
    if (workerDescriptor === undefined) delete (globalThis as { Worker?: unknown }).Worker;
    else Object.defineProperty(globalThis, "Worker", workerDescriptor);
    removeNewListeners(listenersBefore);
  }
}

/**
 * Both emscripten glues add `uncaughtException` / `unhandledRejection` listeners that rethrow, which turns
 * any later unhandled rejection (in a test runner, say) into a crash; Node's defaults already report them.
 */
export function removeNewListeners(before: {
  uncaughtException: ((...args: never[]) => void)[];
  unhandledRejection: ((...args: never[]) => void)[];
}): void {
  for (const listener of process.listeners("uncaughtException")) {
    if (!(before.uncaughtException as unknown[]).includes(listener))
      process.removeListener("uncaughtException", listener);
  }
  for (const listener of process.listeners("unhandledRejection")) {
    if (!(before.unhandledRejection as unknown[]).includes(listener))
      process.removeListener("unhandledRejection", listener);
  }
}
