/**
 * The built-in stages: thin adapters from a stage's YAML settings to the functions of the train, eval and
 * model packages. Each package is imported when its stage first runs, so `hippo --help`, `hippo serve` or a
 * pipeline of user stages does not pay for loading TensorFlow.js.
 */
import { anySettings, HippoError, type PipelineStage } from "@hippocrates/core";
import type { ResolvedStage } from "../config/load.js";
import { runEvalStage, runMergeStage, runTrainingStage } from "./adapters.js";

export interface RunSettings {
  tokenizer: string;
  backend: "auto" | "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";
  threads: number | undefined;
  /** Training stages drop the checkpoints of their output folder and start at step 0 (`hippo train --restart`). */
  restart?: boolean;
}

export function createBuiltinStage(stage: ResolvedStage, settings: RunSettings): PipelineStage {
  switch (stage.kind) {
    case "cpt":
    case "sft":
    case "dpo":
      return {
        kind: stage.kind,
        settings: anySettings,
        run: (input, ctx) => runTrainingStage(stage.kind as "cpt" | "sft" | "dpo", input, ctx, settings),
      };
    case "merge":
      return {
        kind: "merge",
        settings: anySettings,
        run: (input, ctx) => runMergeStage(input, ctx, settings),
      };
    case "eval":
      return { kind: "eval", settings: anySettings, run: (input, ctx) => runEvalStage(input, ctx, settings) };
    default:
      throw new HippoError("INVALID_CONFIG", `unknown stage kind ${JSON.stringify(stage.kind)}`, {
        key: `stages.${stage.id}.kind`,
      });
  }
}
