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
 * The pthread workers are kept unreferenced once loaded (their `ref()` is a no-op): the main thread blocks
 * on futexes while they compute, so they never need the event loop, and a referenced worker would keep
 * every process that used the backend alive forever (XNNPACK's pool threads never exit).
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
export function threadSupportProblem(override?: ThreadedWasmFiles): string | null {
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
    const files = override ?? threadedWasmFiles();
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
/** Longest a threaded start may take (it takes ~0.5 s) before it counts as hung. */
const START_TIMEOUT_MS = 60_000;

export async function withNodePthreads<T>(
  threads: number,
  start: () => Promise<T>,
  files: ThreadedWasmFiles = threadedWasmFiles(),
): Promise<T> {
  // tfjs escapes newlines the same way before it puts this script in a Blob: the string holds "\n" escapes
  // inside string literals that must stay escapes.
  const script = (require(files.workerScript) as { wasmWorkerContents: string }).wasmWorkerContents.replace(
    /\n/g,
    "\\n",
  );

  // Errors while starting fail the start; after a failed start the remaining workers' errors are moot (they
  // are being terminated); after a successful one a worker error is fatal, as in emscripten.
  let state: "starting" | "started" | "failed" = "starting";
  let failStart: (error: Error) => void = () => {};
  const startFailed = new Promise<never>((_, reject) => {
    failStart = reject;
  });
  const workers: NodeWorker[] = [];

  function createPthreadWorker(_blobUrl: unknown): NodeWorker {
    const worker = new NodeWorker(script, { eval: true, name: "hippo-wasm-pthread" });
    workers.push(worker);
    const patched = worker as unknown as PatchedWorker;
    const post = worker.postMessage.bind(worker);
    patched.postMessage = (message: unknown, transfer?: readonly unknown[]) => {
      const m = message as { cmd?: unknown } | null;
      const fixed =
        m !== null && typeof m === "object" && m.cmd === "load" ? { ...m, urlOrBlob: files.glue } : m;
      post(fixed, transfer as never);
    };
    // Emscripten unrefs a worker once it has loaded and refs it while it hosts a pthread; XNNPACK's pool
    // threads run forever, so that ref would keep the process alive: keep them unreferenced.
    patched.ref = () => {};
    // Emscripten installs `worker.on("error", e => worker.onerror(e))` with an onerror that throws.
    const onError = (e: unknown) => {
      const error = new Error(`wasm pthread worker failed: ${e instanceof Error ? e.message : String(e)}`, {
        cause: e,
      });
      if (state === "starting") failStart(error);
      else if (state === "started") throw error;
    };
    Object.defineProperty(worker, "onerror", { configurable: true, get: () => onError, set: () => {} });
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
  const timer = setTimeout(
    () => failStart(new Error(`the threaded build did not start within ${START_TIMEOUT_MS / 1000} s`)),
    START_TIMEOUT_MS,
  );
  try {
    const result = await Promise.race([start(), startFailed]);
    state = "started";
    return result;
  } catch (e) {
    state = "failed";
    for (const worker of workers) void worker.terminate();
    throw e;
  } finally {
    clearTimeout(timer);
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
