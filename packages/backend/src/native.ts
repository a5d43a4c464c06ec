/**
 * The optional native backends: `@tensorflow/tfjs-node-gpu` and `@tensorflow/tfjs-node` bind the TensorFlow C
 * library. They are optional peer dependencies (large native downloads, not available on every platform), so
 * they are loaded with a dynamic import whose specifier TypeScript and bundlers do not follow.
 */
import { createRequire } from "node:module";
import os from "node:os";
import { HippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { activateTfBackend } from "./activate.js";
import type { BackendInfo } from "./types.js";

export type NativeName = "tensorflow-gpu" | "tensorflow";

export const NATIVE_PACKAGES: Record<NativeName, string> = {
  "tensorflow-gpu": "@tensorflow/tfjs-node-gpu",
  tensorflow: "@tensorflow/tfjs-node",
};

const require = createRequire(import.meta.url);

/** Result of trying to load a native package: "missing" is the normal case on machines without it. */
export type NativeLoad =
  | { kind: "loaded" }
  | { kind: "missing"; detail: string }
  | { kind: "broken"; detail: string };

function isNotFound(e: unknown, pkg: string): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  const message = e instanceof Error ? e.message : String(e);
  return (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && message.includes(pkg);
}

export async function loadNative(name: NativeName): Promise<NativeLoad> {
  const pkg = NATIVE_PACKAGES[name];
  // A variable specifier keeps tsc and bundlers from requiring the package at build time.
  const specifier: string = pkg;
  try {
    await import(specifier);
  } catch (e) {
    const detail = e instanceof Error ? (e.message.split("\n")[0] ?? "") : String(e);
    return isNotFound(e, pkg) ? { kind: "missing", detail } : { kind: "broken", detail };
  }
  if (tf.findBackendFactory("tensorflow") === null) {
    // It registered its backend on another copy of tfjs-core (a different version).
    return {
      kind: "broken",
      detail: `${pkg} registered no "tensorflow" backend on this @tensorflow/tfjs-core ${tf.version_core}; install the same version (${tf.version_core}) so there is one tfjs-core`,
    };
  }
  return { kind: "loaded" };
}

function packageVersion(pkg: string): string {
  try {
    return (require(`${pkg}/package.json`) as { version?: string }).version ?? "unknown";
  } catch {
    return "unknown";
  }
}

export function nativeUnavailable(
  name: NativeName,
  load: Exclude<NativeLoad, { kind: "loaded" }>,
): HippoError {
  const pkg = NATIVE_PACKAGES[name];
  const how =
    load.kind === "missing"
      ? `${pkg} is not installed; install it with \`pnpm add ${pkg}@${tf.version_core}\` (it downloads the TensorFlow C library; Linux x64, macOS, Windows)`
      : `${pkg} is installed but failed to load`;
  return new HippoError("BACKEND_UNAVAILABLE", `backend "${name}" is unavailable: ${how}: ${load.detail}`, {
    expected: `${pkg} ${tf.version_core}`,
    got: load.kind === "missing" ? "not installed" : "load error",
  });
}

export async function activateNative(name: NativeName, prefix: string): Promise<BackendInfo> {
  const pkg = NATIVE_PACKAGES[name];
  await activateTfBackend("tensorflow", pkg);
  const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  return {
    name,
    tfBackend: "tensorflow",
    // TensorFlow sizes its intra-op pool to the machine's cores unless TF_NUM_INTRAOP_THREADS says otherwise.
    threads: Number(process.env.TF_NUM_INTRAOP_THREADS) || cores,
    simd: true,
    package: pkg,
    version: packageVersion(pkg),
    reason: `${prefix}${pkg} loaded (TensorFlow C library${name === "tensorflow-gpu" ? " with CUDA" : ""})`,
  };
}
