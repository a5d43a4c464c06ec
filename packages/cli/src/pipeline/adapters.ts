/**
 * Adapters from validated stage settings to the train / eval / model package functions.
 */
import {
  HippoError,
  type PipelineStageInput,
  type PipelineStageOutput,
  type StageContext,
} from "@hippocrates/core";
import type { RunSettings } from "./builtin.js";

/** Import a workspace package, or explain which package is missing. */
export async function importPackage<T>(name: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (e) {
    throw new HippoError(
      "UNSUPPORTED",
      `this stage needs ${name}, which could not be loaded: ${(e as Error).message}`,
      { cause: e },
    );
  }
}

export function requireExport<F>(mod: Record<string, unknown>, pkg: string, name: string): F {
  const f = mod[name];
  if (typeof f !== "function") {
    throw new HippoError("UNSUPPORTED", `${pkg} does not export ${name}() in this version`);
  }
  return f as F;
}

export async function runTrainingStage(
  kind: "cpt" | "sft" | "dpo",
  _input: PipelineStageInput,
  _ctx: StageContext,
  _settings: RunSettings,
): Promise<PipelineStageOutput> {
  const mod = await importPackage<Record<string, unknown>>("@hippocrates/train");
  const name = { cpt: "trainCpt", sft: "trainSft", dpo: "trainDpo" }[kind];
  requireExport(mod, "@hippocrates/train", name);
  throw new HippoError("UNSUPPORTED", `${kind} adapter not wired yet`);
}

export async function runMergeStage(
  _input: PipelineStageInput,
  _ctx: StageContext,
  _settings: RunSettings,
): Promise<PipelineStageOutput> {
  throw new HippoError("UNSUPPORTED", "merge adapter not wired yet");
}

export async function runEvalStage(
  _input: PipelineStageInput,
  _ctx: StageContext,
  _settings: RunSettings,
): Promise<PipelineStageOutput> {
  throw new HippoError("UNSUPPORTED", "eval adapter not wired yet");
}
