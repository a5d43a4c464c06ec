/**
 * The stage registry: one table from a stage `kind` to its `PipelineStage`. The built-in stages (the
 * factories of @hippocrates/train, eval and model) and a user's stages are registered the same way, with
 * `register(stage)`; registering a stage under a kind that is already there replaces it, so a user's module
 * can take a built-in's place (`stage_modules:` in pipeline.yaml, or `createStageRegistry()` in code).
 *
 * A built-in is loaded only when a pipeline uses its kind and nothing has registered that kind yet: its
 * package (and TensorFlow.js with it) is imported then, so `hippo --help` or a pipeline of user stages does
 * not pay for loading them.
 */
import { pathToFileURL } from "node:url";
import { HippoError, type PipelineStage } from "@hippocrates/core";

export interface StageRegistry {
  /** Register `stage` under its `kind`, replacing what was registered under that kind. */
  register<Settings>(stage: PipelineStage<Settings>): void;
  get(kind: string): PipelineStage<unknown> | undefined;
  has(kind: string): boolean;
  /** The registered kinds, in registration order. */
  kinds(): string[];
}

export function createStageRegistry(stages: readonly PipelineStage<unknown>[] = []): StageRegistry {
  const table = new Map<string, PipelineStage<unknown>>();
  const registry: StageRegistry = {
    register(stage) {
      if (!isPipelineStage(stage))
        throw new HippoError("INVALID_ARGUMENT", "not a PipelineStage", {
          expected: "{ kind: string, settings: a Standard Schema, run(input, context) }",
        });
      table.set(stage.kind, stage);
    },
    get: (kind) => table.get(kind),
    has: (kind) => table.has(kind),
    kinds: () => [...table.keys()],
  };
  for (const s of stages) registry.register(s);
  return registry;
}

/** The built-in kinds and the package that provides each (imported when a pipeline first needs it). */
const BUILTIN_LOADERS: Record<string, () => Promise<PipelineStage<unknown>>> = {
  cpt: async () => (await import("@hippocrates/train/stage")).cptStage(),
  sft: async () => (await import("@hippocrates/train/stage")).sftStage(),
  dpo: async () => (await import("@hippocrates/train/stage")).dpoStage(),
  merge: async () => (await import("@hippocrates/model/merge-stage")).mergeStage(),
  eval: async () => (await import("@hippocrates/eval")).evalStage(),
};

export const BUILTIN_STAGE_KINDS: readonly string[] = Object.keys(BUILTIN_LOADERS);

/** Register the built-in stage of `kind` unless the registry has that kind already. False: no such built-in. */
export async function registerBuiltin(registry: StageRegistry, kind: string): Promise<boolean> {
  if (registry.has(kind)) return true;
  const load = Object.hasOwn(BUILTIN_LOADERS, kind) ? BUILTIN_LOADERS[kind] : undefined;
  if (!load) return false;
  registry.register(await load());
  return true;
}

/** A registry holding every built-in stage (loads the train, eval and model packages). */
export async function createBuiltinRegistry(): Promise<StageRegistry> {
  const registry = createStageRegistry();
  for (const kind of BUILTIN_STAGE_KINDS) await registerBuiltin(registry, kind);
  return registry;
}

export function isPipelineStage(v: unknown): v is PipelineStage<unknown> {
  if (v === null || typeof v !== "object") return false;
  const s = v as Partial<PipelineStage<unknown>>;
  return (
    typeof s.kind === "string" &&
    s.kind.length > 0 &&
    typeof s.run === "function" &&
    typeof s.settings === "object" &&
    s.settings !== null &&
    typeof s.settings["~standard"]?.validate === "function"
  );
}

const STAGE_SHAPE =
  "an export { kind: string, settings: a Standard Schema (zod 4, valibot, ... or anySettings), run(input, context) }";

async function importModule(file: string, key: string): Promise<Record<string, unknown>> {
  try {
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    throw new HippoError("INVALID_CONFIG", `cannot load stage module: ${(e as Error).message}`, {
      file,
      key,
      cause: e,
    });
  }
}

/**
 * The PipelineStages a module exports: each exported value that is one, and the items of an exported array
 * of them (`export const stages = [a, b]`). Nothing in the module is called: importing it runs only its top
 * level.
 */
export async function loadStageModule(file: string, key: string): Promise<PipelineStage<unknown>[]> {
  const mod = await importModule(file, key);
  const found: PipelineStage<unknown>[] = [];
  for (const value of Object.values(mod)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (isPipelineStage(v) && !found.includes(v)) found.push(v);
    }
  }
  if (found.length === 0)
    throw new HippoError("INVALID_CONFIG", "stage module exports no PipelineStage", {
      file,
      key,
      expected: STAGE_SHAPE,
      got: `exports ${Object.keys(mod).join(", ") || "nothing"}`,
    });
  return found;
}

/**
 * The stage of a per-stage `module:`: the module's default export when it is a stage, else its only stage,
 * else its one stage of the entry's kind.
 */
export async function loadModuleStage(
  file: string,
  kind: string,
  key: string,
): Promise<PipelineStage<unknown>> {
  const mod = await importModule(file, key);
  if (isPipelineStage(mod.default)) return mod.default;
  const stages = await loadStageModule(file, key);
  const only = stages.length === 1 ? stages[0] : undefined;
  if (only) return only;
  const byKind = stages.filter((s) => s.kind === kind);
  if (byKind.length === 1 && byKind[0]) return byKind[0];
  throw new HippoError("INVALID_CONFIG", "stage module exports several PipelineStages and no default", {
    file,
    key,
    expected: `a default export, or one stage of kind ${JSON.stringify(kind)}`,
    got: stages.map((s) => s.kind).join(", "),
  });
}
