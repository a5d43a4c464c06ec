import { HippoError } from "@hippocrates/core";
import { BACKEND_NAMES, type BackendName, type BackendOptions } from "./types.js";

/** A request after options and environment are merged; `undefined` means "not asked for". */
export interface BackendRequest {
  backend: "auto" | BackendName;
  threads: number | undefined;
  simd: boolean | undefined;
  /** Where each value came from, for messages. */
  source: { backend: string; threads: string };
}

/** The pthread pool tfjs-backend-wasm pre-creates (cc/BUILD); XNNPACK cannot use more threads than that. */
export const MAX_WASM_THREADS = 8;

function parseBackend(value: string, key: string): "auto" | BackendName {
  if (value === "auto" || (BACKEND_NAMES as readonly string[]).includes(value)) {
    return value as "auto" | BackendName;
  }
  throw new HippoError("INVALID_CONFIG", "unknown compute backend", {
    key,
    expected: `one of auto, ${BACKEND_NAMES.join(", ")}`,
    got: JSON.stringify(value),
  });
}

function checkThreads(value: number, key: string, got: string): number {
  if (!Number.isInteger(value) || value < 1 || value > MAX_WASM_THREADS) {
    throw new HippoError("INVALID_CONFIG", "invalid thread count", {
      key,
      expected: `an integer from 1 to ${MAX_WASM_THREADS}`,
      got,
    });
  }
  return value;
}

/**
 * Explicit options win over the environment (HIPPO_BACKEND, HIPPO_THREADS), which wins over defaults, so a
 * CLI flag can override a shell setting.
 */
export function resolveRequest(
  options: BackendOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): BackendRequest {
  let backend: "auto" | BackendName = "auto";
  let backendSource = "default";
  if (options.backend !== undefined) {
    backend = parseBackend(String(options.backend), "options.backend");
    backendSource = "options.backend";
  } else if (env.HIPPO_BACKEND !== undefined && env.HIPPO_BACKEND.trim() !== "") {
    backend = parseBackend(env.HIPPO_BACKEND.trim(), "HIPPO_BACKEND");
    backendSource = "HIPPO_BACKEND";
  }

  let threads: number | undefined;
  let threadsSource = "default";
  if (options.threads !== undefined) {
    threads = checkThreads(options.threads, "options.threads", String(options.threads));
    threadsSource = "options.threads";
  } else if (env.HIPPO_THREADS !== undefined && env.HIPPO_THREADS.trim() !== "") {
    const raw = env.HIPPO_THREADS.trim();
    threads = checkThreads(
      /^\d+$/.test(raw) ? Number(raw) : Number.NaN,
      "HIPPO_THREADS",
      JSON.stringify(raw),
    );
    threadsSource = "HIPPO_THREADS";
  }

  if (options.simd !== undefined && typeof options.simd !== "boolean") {
    throw new HippoError("INVALID_CONFIG", "invalid simd option", {
      key: "options.simd",
      expected: "true or false",
      got: JSON.stringify(options.simd),
    });
  }
  return {
    backend,
    threads,
    simd: options.simd,
    source: { backend: backendSource, threads: threadsSource },
  };
}
