/**
 * The schema of `pipeline.yaml`. Validation runs before anything is written: every problem is reported with
 * its key path (`stages[1].lr`) and what was expected, so a typo never costs a half-finished run.
 *
 * Keys are snake_case, as in HF configs and the authors' YAML files. Objects are strict: an unknown key is an
 * error (a misspelt `learning_rat` would otherwise silently fall back to the default).
 */
import { z } from "zod";

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

/** Keys every stage accepts. */
const baseStage = {
  /** Unique id of the stage in this run (default: its kind, numbered when repeated). */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "letters, digits, '_', '.', '-'")
    .optional(),
  /** A user's module exporting a PipelineStage that replaces the built-in one (path relative to the config). */
  module: z.string().min(1).optional(),
  /** Seed for this stage (default: the run's seed). */
  seed: nonNegInt.optional(),
};

/** Settings shared by the three trainers; defaults are the train package's presets (the paper's settings). */
const trainingKeys = {
  ...baseStage,
  /** JSONL file (TextDocument / InstructionRecord / PreferenceRecord lines), relative to the config. */
  data: z.string().min(1),
  /** Held-out JSONL of the same kind for eval loss (optional). */
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
  /** LoRA settings, or `false` for full fine-tuning. */
  lora: z.union([loraSchema, z.literal(false)]).optional(),
  save_every: positiveInt.optional(),
  /** Recompute each decoder layer in the backward pass (HF's `gradient_checkpointing`): far less memory. */
  gradient_checkpointing: z.boolean().optional(),
  eval_every: positiveInt.optional(),
  log_every: positiveInt.optional(),
};

export const cptStageSchema = z.strictObject({ kind: z.literal("cpt"), ...trainingKeys });

export const sftStageSchema = z.strictObject({
  kind: z.literal("sft"),
  ...trainingKeys,
  /**
   * Prompt template: a string with `{prompt}` (the response follows it), or a name: "default"
   * (`Human: {prompt}\nAssistant: `, the authors' code base), "chatml", "tokenizer" (the tokenizer's chat template).
   */
  template: templateSchema.optional(),
});

export const dpoStageSchema = z.strictObject({
  kind: z.literal("dpo"),
  ...trainingKeys,
  beta: positive.optional(),
  loss_type: z.enum(["sigmoid", "ipo", "hinge"]).optional(),
  label_smoothing: z.number().min(0).max(0.5).optional(),
  template: templateSchema.optional(),
});

export const mergeStageSchema = z.strictObject({
  kind: z.literal("merge"),
  ...baseStage,
  /** dtype of the merged safetensors (default float32). */
  dtype: z.enum(["float32", "float16", "bfloat16"]).optional(),
});

export const evalStageSchema = z.strictObject({
  kind: z.literal("eval"),
  ...baseStage,
  /** Task names of the eval package, or paths to task files (JSON/YAML). */
  tasks: z.array(z.string().min(1)).min(1),
  num_fewshot: nonNegInt.optional(),
  limit: positiveInt.optional(),
  profile: z.enum(["v0.3", "current"]).optional(),
  /** Folder with the published benchmark files (e.g. ../shared/data/benchmarks). */
  data_dir: z.string().min(1).optional(),
  batch_size: positiveInt.optional(),
  /** Row label in the report (default: the training stages before it, e.g. "+CPT+SFT"). */
  label: z.string().min(1).optional(),
  /** Write per-sample results (JSONL) beside results.json (default true). */
  write_out: z.boolean().optional(),
});

/** A user's stage: any kind name, a module, and free-form settings passed through as `config`. */
export const customStageSchema = z.strictObject({
  kind: z.string().min(1),
  ...baseStage,
  module: z.string().min(1),
  config: z.record(z.string(), z.unknown()).optional(),
});

export const BUILTIN_STAGE_SCHEMAS = {
  cpt: cptStageSchema,
  sft: sftStageSchema,
  dpo: dpoStageSchema,
  merge: mergeStageSchema,
  eval: evalStageSchema,
} as const;

export type BuiltinStageKind = keyof typeof BUILTIN_STAGE_SCHEMAS;
export const BUILTIN_STAGE_KINDS = Object.keys(BUILTIN_STAGE_SCHEMAS) as BuiltinStageKind[];

export type CptStageConfig = z.infer<typeof cptStageSchema>;
export type SftStageConfig = z.infer<typeof sftStageSchema>;
export type DpoStageConfig = z.infer<typeof dpoStageSchema>;
export type MergeStageConfig = z.infer<typeof mergeStageSchema>;
export type EvalStageConfig = z.infer<typeof evalStageSchema>;
export type CustomStageConfig = z.infer<typeof customStageSchema>;
export type TrainingStageConfig = CptStageConfig | SftStageConfig | DpoStageConfig;
export type StageConfig =
  | CptStageConfig
  | SftStageConfig
  | DpoStageConfig
  | MergeStageConfig
  | EvalStageConfig
  | CustomStageConfig;

/** The top level; `stages` are validated one by one against the schema their `kind` picks. */
export const pipelineSchema = z.strictObject({
  /** Name of the run (default: the config file's name). */
  name: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "letters, digits, '_', '.', '-'")
    .optional(),
  /** HF model folder the first stage starts from (config.json + safetensors). */
  model: z.string().min(1),
  /** Tokenizer folder (default: the model folder). */
  tokenizer: z.string().min(1).optional(),
  /** Run folder (default: runs/<name> beside the config). */
  output_dir: z.string().min(1).optional(),
  seed: nonNegInt.optional(),
  backend: z.enum(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"]).optional(),
  threads: positiveInt.optional(),
  stages: z.array(z.looseObject({ kind: z.string().min(1) })).min(1),
});

export type PipelineTopLevel = z.infer<typeof pipelineSchema>;
