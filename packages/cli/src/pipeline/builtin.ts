/**
 * TEMPORARY: the built-in stages as `PipelineStage`s over the CLI's adapters, until the packages export their
 * own factories (`cptStage()` ... of @hippocrates/train, `evalStage()` of @hippocrates/eval, `mergeStage()`
 * of @hippocrates/model). They are registered through the same registry as a user's stage.
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { HippoError, type PipelineStage, type StageCheckContext } from "@hippocrates/core";
import { z } from "zod";
import { runEvalStage, runMergeStage, runTrainingStage } from "./adapters.js";

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const positive = z.number().positive();

export const loraSchema = z.strictObject({
  r: positiveInt,
  alpha: positive,
  dropout: z.number().min(0).max(1).optional(),
  target_modules: z
    .array(z.enum(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    .min(1),
});

const templateSchema = z.union([z.enum(["default", "chatml", "tokenizer"]), z.string().includes("{prompt}")]);

const trainingKeys = {
  data: z.string().min(1),
  eval_data: z.string().min(1).optional(),
  epochs: positive.optional(),
  max_steps: positiveInt.optional(),
  lr: positive.optional(),
  batch_size: positiveInt.optional(),
  grad_accum: positiveInt.optional(),
  max_length: positiveInt.optional(),
  scheduler: z.enum(["cosine", "constant", "linear"]).optional(),
  warmup_steps: nonNegInt.optional(),
  warmup_ratio: z.number().min(0).max(1).optional(),
  weight_decay: z.number().min(0).optional(),
  max_grad_norm: positive.optional(),
  lora: z.union([loraSchema, z.literal(false)]).optional(),
  save_every: positiveInt.optional(),
  gradient_checkpointing: z.boolean().optional(),
  eval_every: positiveInt.optional(),
  log_every: positiveInt.optional(),
};

export const cptSettings = z.strictObject(trainingKeys);
export const sftSettings = z.strictObject({ ...trainingKeys, template: templateSchema.optional() });
export const dpoSettings = z.strictObject({
  ...trainingKeys,
  beta: positive.optional(),
  loss_type: z.enum(["sigmoid", "ipo", "hinge"]).optional(),
  label_smoothing: z.number().min(0).max(0.5).optional(),
  template: templateSchema.optional(),
});
export const mergeSettings = z.strictObject({ dtype: z.enum(["float32", "float16", "bfloat16"]).optional() });
export const evalSettings = z.strictObject({
  tasks: z.array(z.string().min(1)).min(1),
  num_fewshot: nonNegInt.optional(),
  limit: positiveInt.optional(),
  profile: z.enum(["v0.3", "current"]).optional(),
  data_dir: z.string().min(1).optional(),
  batch_size: positiveInt.optional(),
  label: z.string().min(1).optional(),
  write_out: z.boolean().optional(),
});

export type CptSettings = z.infer<typeof cptSettings>;
export type SftSettings = z.infer<typeof sftSettings>;
export type DpoSettings = z.infer<typeof dpoSettings>;
export type TrainingSettings = CptSettings | SftSettings | DpoSettings;
export type MergeSettings = z.infer<typeof mergeSettings>;
export type EvalSettings = z.infer<typeof evalSettings>;

export const BUILTIN_STAGE_SCHEMAS = {
  cpt: cptSettings,
  sft: sftSettings,
  dpo: dpoSettings,
  merge: mergeSettings,
  eval: evalSettings,
} as const;

function checkFile(baseDir: string, key: string, p: string | undefined): void {
  if (p === undefined) return;
  const file = resolve(baseDir, p);
  if (!existsSync(file)) throw new HippoError("INVALID_CONFIG", `path does not exist: ${file}`, { key });
  if (!statSync(file).isFile())
    throw new HippoError("INVALID_CONFIG", `expected a JSONL file, got a folder: ${file}`, { key });
}

async function checkTraining(c: TrainingSettings, ctx: StageCheckContext): Promise<void> {
  checkFile(ctx.baseDir, "data", c.data);
  checkFile(ctx.baseDir, "eval_data", c.eval_data);
}

async function checkEval(c: EvalSettings, ctx: StageCheckContext): Promise<void> {
  const ev = await import("@hippocrates/eval");
  for (const [j, t] of c.tasks.entries()) {
    if (/[\\/]|\.json$/.test(t)) checkFile(ctx.baseDir, `tasks[${j}]`, t);
    else
      try {
        ev.defaultRegistry.resolve([t], c.profile ?? "v0.3");
      } catch (e) {
        throw new HippoError("INVALID_CONFIG", (e as HippoError).reason ?? String(e), { key: `tasks[${j}]` });
      }
  }
}

export function builtinStage(
  kind: "cpt" | "sft" | "dpo" | "merge" | "eval" | string,
): PipelineStage<unknown> {
  switch (kind) {
    case "cpt":
      return {
        kind,
        settings: cptSettings,
        check: checkTraining,
        run: (input, ctx) => runTrainingStage("cpt", input.model, input.config, ctx),
      } satisfies PipelineStage<CptSettings>;
    case "sft":
      return {
        kind,
        settings: sftSettings,
        check: checkTraining,
        run: (input, ctx) => runTrainingStage("sft", input.model, input.config, ctx),
      } satisfies PipelineStage<SftSettings>;
    case "dpo":
      return {
        kind,
        settings: dpoSettings,
        check: checkTraining,
        run: (input, ctx) => runTrainingStage("dpo", input.model, input.config, ctx),
      } satisfies PipelineStage<DpoSettings>;
    case "merge":
      return {
        kind,
        settings: mergeSettings,
        run: (input, ctx) => runMergeStage(input.model, input.config, ctx),
      } satisfies PipelineStage<MergeSettings>;
    default:
      return {
        kind: "eval",
        settings: evalSettings,
        check: checkEval,
        run: (input, ctx) => runEvalStage(input.model, input.config, ctx),
      } satisfies PipelineStage<EvalSettings>;
  }
}
