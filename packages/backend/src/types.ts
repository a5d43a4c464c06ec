/** The compute backends Hippocrates.ts knows, fastest first. */
export type BackendName = "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";

export const BACKEND_NAMES: readonly BackendName[] = ["tensorflow-gpu", "tensorflow", "wasm", "cpu"];

export interface BackendOptions {
  /** "auto" (default): tfjs-node-gpu, then tfjs-node when installed, else WebAssembly. "cpu" only by name. */
  backend?: "auto" | BackendName;
  /**
   * WebAssembly only: XNNPACK thread-pool size. Default: every core the process may use (at most 8, the
   * size of the build's pthread pool). 1 selects the single-thread SIMD build.
   */
  threads?: number;
  /** WebAssembly only: use the SIMD builds (default: when the runtime supports WebAssembly SIMD). */
  simd?: boolean;
}

export interface BackendInfo {
  name: BackendName;
  /** What `tf.getBackend()` reports: "tensorflow", "wasm" or "cpu". */
  tfBackend: string;
  /** Threads doing the math: the XNNPACK pool for wasm, 1 for cpu, the TensorFlow pool for tfjs-node. */
  threads: number;
  simd: boolean;
  /** The npm package that provides the backend, and its version. */
  package: string;
  version: string;
  /** Why this backend (and thread count) was picked, including what was tried and skipped. */
  reason: string;
}
