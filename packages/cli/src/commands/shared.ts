/** Helpers shared by the subcommands. */
import { HippoError } from "@hippocrates/core";

export type BackendChoice = "auto" | "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";

/**
 * Initialise the compute backend (only when a stage needs it) and describe it for the manifest. Returns a
 * thunk so that a pipeline of user stages never loads TensorFlow.js.
 */
export function describeBackendLazy(
  backend: BackendChoice,
  threads: number | undefined,
): () => Promise<unknown> {
  return async () => {
    try {
      const mod = (await import("@hippocrates/backend")) as Record<string, unknown>;
      const init = mod.initBackend ?? mod.setupBackend ?? mod.selectBackend;
      if (typeof init !== "function")
        return { requested: backend, note: "@hippocrates/backend exports no initialiser" };
      return await (init as (o: unknown) => Promise<unknown>)({ backend, ...(threads ? { threads } : {}) });
    } catch (e) {
      if (e instanceof HippoError) throw e;
      return { requested: backend, error: (e as Error).message };
    }
  };
}

export function parseIntArg(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) {
      throw new HippoError("INVALID_ARGUMENT", `${name} must be a non-negative integer`, {
        key: name,
        got: JSON.stringify(value),
      });
    }
    return n;
  };
}

export function parseFloatArg(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n))
      throw new HippoError("INVALID_ARGUMENT", `${name} must be a number`, {
        key: name,
        got: JSON.stringify(value),
      });
    return n;
  };
}
