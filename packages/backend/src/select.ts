import { HippoError, isHippoError } from "@hippocrates/core";
import { version_cpu } from "@tensorflow/tfjs-backend-cpu";
import * as tf from "@tensorflow/tfjs-core";
import { activateTfBackend } from "./activate.js";
import { activateNative, loadNative, NATIVE_PACKAGES, type NativeName, nativeUnavailable } from "./native.js";
import { type BackendRequest, resolveRequest } from "./options.js";
import type { BackendInfo, BackendOptions } from "./types.js";
import { initWasm } from "./wasm.js";

/** Largest WebAssembly heap (32-bit addresses; emscripten's getHeapMax): weights + activations + gradients. */
export const WASM_MAX_HEAP_BYTES = 4294901760;

let current: BackendInfo | null = null;
// Calls are serialised so that concurrent callers get one initialisation, not two racing ones.
let queue: Promise<unknown> = Promise.resolve();

/**
 * Selects, initialises and checks the TensorFlow.js backend. Idempotent: once a backend runs, later calls
 * return the same BackendInfo unless they name a different backend (then it switches) or ask for wasm
 * settings that can no longer change in this process (then it throws UNSUPPORTED).
 */
export function initBackend(options?: BackendOptions): Promise<BackendInfo> {
  const run = queue.then(() => initSerial(options));
  queue = run.catch(() => undefined);
  return run;
}

/** The backend initBackend selected, or null before the first successful call. */
export function backendInfo(): BackendInfo | null {
  return current;
}

/** One line, e.g. "wasm (SIMD, 2 threads) @tensorflow/tfjs-backend-wasm 4.22.0". */
export function describeBackend(info: BackendInfo): string {
  const threads = `${info.threads} thread${info.threads === 1 ? "" : "s"}`;
  const detail =
    info.name === "wasm"
      ? `${info.simd ? "SIMD" : "no SIMD"}, ${threads}`
      : info.name === "cpu"
        ? `plain JavaScript, ${threads}`
        : info.name === "tensorflow-gpu"
          ? "TensorFlow C library with CUDA"
          : `TensorFlow C library, ${threads}`;
  return `${info.name} (${detail}) ${info.package} ${info.version}`;
}

/** Memory the backend can address for tensors: 4 GiB on wasm, null where only the machine's RAM limits it. */
export function memoryLimitBytes(info: BackendInfo): number | null {
  return info.name === "wasm" ? WASM_MAX_HEAP_BYTES : null;
}

async function initSerial(options: BackendOptions | undefined): Promise<BackendInfo> {
  const req = resolveRequest(options);
  if (current !== null && tf.getBackend() === current.tfBackend) {
    const same = req.backend === "auto" || req.backend === current.name;
    if (same && current.name !== "wasm") return current;
    if (same) {
      // initWasm returns the running build, or throws if threads/simd ask for another one.
      current = await initWasm(wasmRequest(req), "");
      return current;
    }
  }
  current = await select(req);
  return current;
}

function wasmRequest(req: BackendRequest) {
  return { threads: req.threads, simd: req.simd, threadsSource: req.source.threads };
}

async function select(req: BackendRequest): Promise<BackendInfo> {
  const notWasm = req.threads !== undefined ? `; ${req.source.threads} ignored (wasm only)` : "";
  switch (req.backend) {
    case "tensorflow-gpu":
    case "tensorflow": {
      const load = await loadNative(req.backend);
      if (load.kind !== "loaded") throw nativeUnavailable(req.backend, load);
      return activateNative(req.backend, `asked for by ${req.source.backend}${notWasm}; `);
    }
    case "cpu":
      return activateCpu(`asked for by ${req.source.backend}${notWasm}`);
    case "wasm":
      return initWasm(wasmRequest(req), `asked for by ${req.source.backend}; `);
    case "auto":
      return selectAuto(req);
  }
}

async function selectAuto(req: BackendRequest): Promise<BackendInfo> {
  const notes: string[] = [];
  for (const name of ["tensorflow-gpu", "tensorflow"] as NativeName[]) {
    const load = await loadNative(name);
    if (load.kind === "loaded") return activateNative(name, `auto: ${notes.concat("").join("; ")}`);
    const pkg = NATIVE_PACKAGES[name];
    if (load.kind === "missing") {
      notes.push(`${pkg} not installed`);
    } else {
      // Installed but unusable (no CUDA, wrong tfjs-core version): go on, but do not hide it.
      notes.push(`${pkg} failed to load (${load.detail})`);
      process.emitWarning(`${pkg} is installed but failed to load: ${load.detail}`, {
        code: "HIPPO_BACKEND",
      });
    }
  }
  try {
    return await initWasm(wasmRequest(req), `auto: ${notes.join("; ")}; `);
  } catch (e) {
    if (!isHippoError(e)) throw e;
    throw new HippoError(e.code, `auto: ${notes.join("; ")}; then ${e.reason}`, {
      expected: e.expected,
      got: e.got,
      cause: e,
    });
  }
}

async function activateCpu(reason: string): Promise<BackendInfo> {
  await activateTfBackend("cpu", "cpu");
  return {
    name: "cpu",
    tfBackend: "cpu",
    threads: 1,
    simd: false,
    package: "@tensorflow/tfjs-backend-cpu",
    version: version_cpu,
    reason: `${reason} (plain JavaScript kernels, ~35x slower than wasm; never picked automatically)`,
  };
}
