/**
 * Helpers shared by the subcommands. The package imports are lazy, so `hippo --help` and commands that need
 * no model never load TensorFlow.js.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import {
  createBarReporter,
  HippoError,
  isHippoError,
  type ModelArtifact,
  type ProgressReporter,
  type ResolvedSource,
  type ScoringModel,
  silentProgress,
} from "@hippocrates/core";
import type { HubSource, PretrainedKind } from "@hippocrates/hub";
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

/** A model, tokenizer or adapter as a command names it, resolved: the folder to load, and its Hub origin. */
export interface Resolved {
  /** Absolute folder: the local path, or the Hub cache snapshot. */
  path: string;
  /** Where it came from on the Hub (null: a local folder). */
  hub: HubSource | null;
}

/** Download progress of Hub files: a bar on stderr (rate, ETA), or nothing with --no-progress. */
export function hubProgress(show: boolean): ProgressReporter {
  return show ? createBarReporter() : silentProgress;
}

/**
 * The one way a command turns a `--model`, `--tokenizer`, `--adapter` or positional argument into a folder:
 * @hippocrates/hub's `resolvePretrained` (a local path when one exists, else a Hub id `org/name[@rev]` found in
 * the Hugging Face cache or fetched into it, with `HF_HOME`, `HF_HUB_CACHE`, `HF_ENDPOINT`, `HF_TOKEN` and
 * `HF_HUB_OFFLINE` as Python's tools read them). `flag` names the option in errors: a name that is neither a
 * folder here nor on the Hub says both.
 */
export async function resolveSource(
  nameOrPath: string,
  kind: PretrainedKind,
  options: { flag: string; revision?: string; progress?: ProgressReporter; offline?: boolean },
): Promise<Resolved> {
  const { parseHubId, resolvePretrained } = await import("@hippocrates/hub");
  const local = existsSync(nameOrPath);
  if (!local && parseHubId(nameOrPath) === null) {
    if (options.revision !== undefined)
      throw new HippoError("INVALID_ARGUMENT", `${options.flag}: a revision needs a Hub id (org/name)`, {
        key: options.flag,
        expected: "org/name or org/name@revision",
        got: nameOrPath,
      });
    throw new HippoError("NOT_FOUND", `${options.flag}: no such folder, and not a Hub id (org/name)`, {
      key: options.flag,
      file: resolve(nameOrPath),
    });
  }
  try {
    const r = await resolvePretrained(nameOrPath, kind, {
      revision: local ? undefined : options.revision,
      progress: options.progress ?? silentProgress,
      offline: options.offline,
    });
    return { path: resolve(r.path), hub: r.hub };
  } catch (e) {
    if (!isHippoError(e) || local) throw e;
    // "models/hippo" is a relative folder to one user and a Hub id to the resolver: say both.
    throw new HippoError(
      e.code,
      `${options.flag} ${nameOrPath}: no folder ${resolve(nameOrPath)}, and ${e.reason}`,
      {
        ...e.location,
        expected: e.expected,
        got: e.got,
        cause: e,
      },
    );
  }
}

/** The pipeline artifact of a resolved model: a Hub model by id at its commit (what PEFT and manifests name). */
export function modelArtifact(r: Resolved): Extract<ModelArtifact, { kind: "hf-model" }> {
  return r.hub
    ? { kind: "hf-model", path: r.hub.repo, revision: r.hub.commit }
    : { kind: "hf-model", path: r.path };
}

/** A resolved Hub origin as the run manifest and a command's output record it. */
export function sourceRecord(role: string, r: Resolved): ResolvedSource | undefined {
  if (!r.hub) return undefined;
  return { role, type: "model", repo: r.hub.repo, revision: r.hub.revision, commit: r.hub.commit };
}

/**
 * The tokenizer of a command: `--tokenizer` when given, else the model's own (a Hub model's tokenizer files
 * come from the same repository and revision; a local folder is its own tokenizer folder).
 */
export async function resolveTokenizer(
  tokenizer: string | undefined,
  model: { name: string; resolved: Resolved },
  progress: ProgressReporter,
  options: { offline?: boolean } = {},
): Promise<Resolved> {
  const { offline } = options;
  if (tokenizer !== undefined)
    return resolveSource(tokenizer, "tokenizer", { flag: "--tokenizer", progress, offline });
  if (!model.resolved.hub) return model.resolved;
  const { repo, commit } = model.resolved.hub;
  const r = await resolveSource(`${repo}@${commit}`, "tokenizer", { flag: "--model", progress, offline });
  return { path: r.path, hub: model.resolved.hub };
}

/** Load a tokenizer a command names (a folder or a Hub id, through `resolveSource`). */
export async function loadRunTokenizer(
  nameOrPath: string,
  options: { flag?: string; progress?: ProgressReporter } = {},
): Promise<HfTokenizer> {
  const { loadTokenizer } = await import("@hippocrates/tokenizer");
  const r = await resolveSource(nameOrPath, "tokenizer", {
    flag: options.flag ?? "--tokenizer",
    progress: options.progress,
  });
  return loadTokenizer(r.path);
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
