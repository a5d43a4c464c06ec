/**
 * Helpers shared by the subcommands. The package imports are lazy, so `hippo --help` and commands that need
 * no model never load TensorFlow.js.
 */
import { HippoError, type ModelArtifact, type ScoringModel } from "@hippocrates/core";
import type { CausalLM } from "@hippocrates/model";
import type { HfTokenizer } from "@hippocrates/tokenizer";

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

/** Initialise the compute backend (`@hippocrates/backend`'s `initBackend`). */
export async function ensureBackend(settings: {
  backend: BackendChoice;
  threads?: number | undefined;
  tokenizer?: string;
}): Promise<unknown> {
  const { initBackend } = await import("@hippocrates/backend");
  return initBackend({
    backend: settings.backend,
    ...(settings.threads ? { threads: settings.threads } : {}),
  });
}

export async function loadRunTokenizer(dir: string): Promise<HfTokenizer> {
  const { loadTokenizer } = await import("@hippocrates/tokenizer");
  return loadTokenizer(dir);
}

/** Copy the tokenizer files beside a model so the folder is usable on its own (`hippo serve DIR`). */
export async function copyTokenizerFiles(from: string, to: string): Promise<void> {
  const { copyTokenizerFiles: copy } = await import("@hippocrates/model");
  await copy(from, to);
}

/** Load an artifact (adapters merged into their base, in order): `@hippocrates/model`'s `loadArtifact`. */
export async function loadArtifactModel(artifact: ModelArtifact): Promise<CausalLM> {
  const { loadArtifact } = await import("@hippocrates/model");
  return loadArtifact(artifact);
}

/** The model package's ScoringModel (shared-context batched scoring). */
export async function scoringModelFor(
  model: CausalLM,
  name: string,
  batchSize?: number,
): Promise<ScoringModel> {
  const { asScoringModel } = await import("@hippocrates/model");
  return asScoringModel(model, { name, ...(batchSize ? { batchSize } : {}) });
}
