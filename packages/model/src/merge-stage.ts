/**
 * The pipeline's `merge` stage: fold the input's adapter chain into its base (PEFT's `merge_and_unload`, in
 * chain order) and save the result as an HF folder (`<outputDir>/model`: config.json + safetensors in the
 * chosen dtype) with the run's tokenizer files beside it, so it loads in transformers, vLLM or `hippo serve`
 * on its own. A full model as input is passed on unchanged.
 *
 * Importing this module loads no TensorFlow.js (`@hippocrates/model/merge-stage` is this module alone); the
 * caller initialises the backend before `run`.
 */
import { join } from "node:path";
import {
  HippoError,
  type PipelineStage,
  type PipelineStageOutput,
  type StageContext,
  unknownKeysError,
  writeDirAtomic,
} from "@hippocrates/core";
import { z } from "zod";
import type { SaveDType } from "./io.js";

export const MERGE_DTYPES = ["float32", "float16", "bfloat16"] as const;
export type MergeDType = (typeof MERGE_DTYPES)[number];

export interface MergeSettings {
  /** dtype of the saved safetensors (torch's names, as config.json's `torch_dtype`); default float32. */
  dtype: MergeDType;
}

const SAVE_DTYPE: Record<MergeDType, SaveDType> = { float32: "F32", float16: "F16", bfloat16: "BF16" };

/** The merge stage's settings schema, with `defaults` in place of the built-in ones. */
export function mergeSettingsSchema(defaults: Partial<MergeSettings> = {}) {
  return z.strictObject(
    { dtype: z.enum(MERGE_DTYPES).default(defaults.dtype ?? "float32") },
    { error: unknownKeysError(["dtype"]) },
  );
}

/** `mergeStage({ dtype: "bfloat16" })`: the defaults a pipeline entry's own settings override. */
export function mergeStage(defaults: Partial<MergeSettings> = {}): PipelineStage<MergeSettings> {
  const parsed = mergeSettingsSchema().safeParse(defaults);
  if (!parsed.success)
    throw new HippoError("INVALID_CONFIG", `merge stage defaults: ${parsed.error.issues[0]?.message}`, {
      key: parsed.error.issues[0]?.path.join("."),
    });
  return {
    kind: "merge",
    settings: mergeSettingsSchema(parsed.data),
    async run(input, ctx: StageContext): Promise<PipelineStageOutput> {
      if (input.model.kind === "hf-model") {
        ctx.log("input is already a full model: nothing to merge");
        return { model: input.model, metrics: {}, files: {} };
      }
      const [{ copyTokenizerFiles, loadArtifact }, { saveModel }] = await Promise.all([
        import("./artifact.js"),
        import("./io.js"),
      ]);
      const out = join(ctx.outputDir, "model");
      const model = await loadArtifact(input.model);
      try {
        // Built in a temporary folder and renamed into place: a stopped merge leaves no half-written model.
        await writeDirAtomic(out, async (tmp) => {
          await saveModel(model, tmp, { dtype: SAVE_DTYPE[input.config.dtype] });
          await copyTokenizerFiles(ctx.tokenizer, tmp);
        });
      } finally {
        model.dispose();
      }
      return { model: { kind: "hf-model", path: out }, metrics: {}, files: { model: out } };
    },
  };
}
