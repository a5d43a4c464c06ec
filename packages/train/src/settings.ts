/**
 * The settings of the training stages, spelled as HF transformers' `TrainingArguments`, TRL's `SFTConfig` /
 * `DPOConfig` and PEFT's `LoraConfig` spell them (`learning_rate`, `per_device_train_batch_size`,
 * `lora: { r, lora_alpha, target_modules: "all-linear" }`, `beta`, ...). One spelling from the pipeline file
 * and `hippo train` down to `trainCausalLm` / `trainDpo`; the one translation into the loop's own option
 * names is `loopConfigOf` below.
 *
 * The short names of earlier configs (`lr`, `epochs`, `batch_size`, `grad_accum`, `scheduler`, `save_every`,
 * `log_every`, `eval_every`, `lora.alpha`, `lora.dropout`) are accepted as aliases of the same keys; giving
 * both spellings is an error, as is an unknown key (with a "did you mean" suggestion). Given keys override the
 * stage's defaults one by one, `lora` included: `lora: { r: 32 }` keeps the preset's alpha and target modules.
 *
 * This module loads no TensorFlow.js: a pipeline validates its configuration before anything heavy loads.
 */
import { HippoError, unknownKeysError } from "@hippocrates/core";
import { z } from "zod";
import type { DpoLossType } from "./losses.js";

/** PEFT's `LoraConfig` fields, as `adapter_config.json` writes them. */
export interface PeftLoraSettings {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** PEFT module names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj) or "all-linear". */
  target_modules: string[] | "all-linear";
  use_rslora: boolean;
}

/** HF's `lr_scheduler_type` values we implement (HF semantics: `constant` has no warmup). */
export const LR_SCHEDULER_TYPES = ["cosine", "linear", "constant", "constant_with_warmup"] as const;
export type LrSchedulerType = (typeof LR_SCHEDULER_TYPES)[number];

export const DPO_LOSS_TYPES = ["sigmoid", "ipo", "hinge"] as const satisfies readonly DpoLossType[];

/** Every training knob of a stage, with HF's names; the presets fill them with the paper's values. */
export interface TrainingSettings {
  learning_rate: number;
  /** Whole epochs (the loop counts epochs as integers). */
  num_train_epochs: number;
  /** Stop after this many optimizer steps (when fewer than the epochs give). */
  max_steps?: number;
  per_device_train_batch_size: number;
  /** Batch size of evaluation (default: per_device_train_batch_size). */
  per_device_eval_batch_size?: number;
  gradient_accumulation_steps: number;
  lr_scheduler_type: LrSchedulerType;
  /** Warmup as a fraction of the total steps; `warmup_steps` wins when given (HF). */
  warmup_ratio: number;
  warmup_steps?: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  /** Global-norm clipping; 0 disables. */
  max_grad_norm: number;
  /** Checkpoint every N steps (and at the end and on abort); 0 = only then. */
  save_steps: number;
  /** Keep only the newest N checkpoints. */
  save_total_limit?: number;
  logging_steps: number;
  /** Evaluate every N steps (default: only at the end) when there is evaluation data. */
  eval_steps?: number;
  /** Truncate longer sequences (right); CPT packs blocks of this length. */
  max_length: number;
  /** Recompute each decoder layer in the backward pass: far less memory, the linear products replayed. */
  gradient_checkpointing: boolean;
  /**
   * Start at step 0, dropping the checkpoints in the output folder (HF's `overwrite_output_dir`). Otherwise an
   * interrupted run resumes from its newest whole checkpoint, and stops when every checkpoint is corrupt.
   */
  overwrite_output_dir: boolean;
  /** Seed of initialisation, shuffling and dropout (a pipeline stage takes its seed from the run). */
  seed?: number;
  /** A new LoRA adapter with these settings, or `false` to train every weight (full fine-tuning). */
  lora: PeftLoraSettings | false;
}

/** TRL's DPOConfig additions. */
export interface DpoTrainingSettings extends TrainingSettings {
  beta: number;
  loss_type: DpoLossType;
  /** cDPO's label smoothing (sigmoid loss only). */
  label_smoothing: number;
}

/** The data of a training stage: files relative to the pipeline file's folder (core's `StageContext.baseDir`). */
export interface DataSettings {
  /** Training records: JSONL, JSON, CSV or Parquet in one of TRL's dataset formats (see @hippocrates/data). */
  data: string;
  /** Held-out records of the same kind: eval loss (DPO: TRL's eval metrics) every `eval_steps` and at the end. */
  eval_data?: string;
}

/**
 * How records with roles become text: "default" (`Human: {prompt}\nAssistant: `, the authors' code base),
 * "chatml", "tokenizer" (the tokenizer's chat template), "none" (standard string records literal, as TRL),
 * or a string with `{prompt}`.
 */
export interface TemplateSettings {
  template: string;
}

export type CptSettings = TrainingSettings & DataSettings;
export type SftSettings = TrainingSettings & DataSettings & TemplateSettings;
export type DpoSettings = DpoTrainingSettings & DataSettings & TemplateSettings;

/** Earlier short names -> the documented names. */
export const SETTING_ALIASES = {
  lr: "learning_rate",
  epochs: "num_train_epochs",
  batch_size: "per_device_train_batch_size",
  grad_accum: "gradient_accumulation_steps",
  scheduler: "lr_scheduler_type",
  save_every: "save_steps",
  log_every: "logging_steps",
  eval_every: "eval_steps",
} as const satisfies Record<string, keyof TrainingSettings>;

export const LORA_ALIASES = {
  alpha: "lora_alpha",
  dropout: "lora_dropout",
} as const satisfies Record<string, keyof PeftLoraSettings>;

/** PEFT's LoraConfig defaults (r 8, lora_alpha 8, no dropout, q/v for Llama): a `lora` block over `false`. */
export const PEFT_LORA_DEFAULTS: PeftLoraSettings = {
  r: 8,
  lora_alpha: 8,
  lora_dropout: 0,
  target_modules: ["q_proj", "v_proj"],
  use_rslora: false,
};

// ---------------------------------------------------------------------------------------------------------
// Schemas. Each stage's schema reads the pipeline entry (every key optional, aliases allowed, strict), lays it
// over the stage's defaults, and validates the complete result against the settings type.

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const positive = z.number().positive();
const unit = z.number().min(0).lt(1);

const loraFields = {
  r: posInt,
  lora_alpha: positive,
  lora_dropout: unit,
  target_modules: z.union([
    z.literal("all-linear"),
    z.array(z.string().min(1)).min(1, "name at least one module, or all-linear"),
  ]),
  use_rslora: z.boolean(),
};
const loraAliasFields = { alpha: loraFields.lora_alpha, dropout: loraFields.lora_dropout };
const loraKeys = [...Object.keys(loraFields), ...Object.keys(loraAliasFields)];
const loraInput = z
  .strictObject({ ...loraFields, ...loraAliasFields }, { error: unknownKeysError(loraKeys) })
  .partial();
const loraComplete: z.ZodType<PeftLoraSettings> = z.strictObject(loraFields);

const trainingFields = {
  learning_rate: positive,
  num_train_epochs: posInt,
  max_steps: posInt.optional(),
  per_device_train_batch_size: posInt,
  per_device_eval_batch_size: posInt.optional(),
  gradient_accumulation_steps: posInt,
  lr_scheduler_type: z.enum(LR_SCHEDULER_TYPES),
  warmup_ratio: unit,
  warmup_steps: nonNegInt.optional(),
  weight_decay: z.number().min(0),
  adam_beta1: unit,
  adam_beta2: unit,
  adam_epsilon: positive,
  max_grad_norm: z.number().min(0),
  save_steps: nonNegInt,
  save_total_limit: posInt.optional(),
  logging_steps: posInt,
  eval_steps: posInt.optional(),
  max_length: posInt,
  gradient_checkpointing: z.boolean(),
  overwrite_output_dir: z.boolean(),
  seed: nonNegInt.optional(),
};
const aliasFields = {
  lr: trainingFields.learning_rate,
  epochs: trainingFields.num_train_epochs,
  batch_size: trainingFields.per_device_train_batch_size,
  grad_accum: trainingFields.gradient_accumulation_steps,
  scheduler: trainingFields.lr_scheduler_type,
  save_every: trainingFields.save_steps,
  log_every: trainingFields.logging_steps,
  eval_every: posInt,
};
const dataFields = {
  data: z
    .string({ error: "the stage needs its training data: a file path relative to the pipeline file" })
    .min(1),
  eval_data: z.string().min(1).optional(),
};
const templateFields = { template: z.string().min(1) };
const dpoFields = {
  beta: positive,
  loss_type: z.enum(DPO_LOSS_TYPES),
  label_smoothing: z.number().min(0).max(0.5),
};

const cptSettingsComplete: z.ZodType<CptSettings> = z.strictObject({
  ...trainingFields,
  ...dataFields,
  lora: z.union([z.literal(false), loraComplete]),
});
const sftSettingsComplete: z.ZodType<SftSettings> = z.strictObject({
  ...trainingFields,
  ...dataFields,
  ...templateFields,
  lora: z.union([z.literal(false), loraComplete]),
});
const dpoSettingsComplete: z.ZodType<DpoSettings> = z.strictObject({
  ...trainingFields,
  ...dataFields,
  ...templateFields,
  ...dpoFields,
  lora: z.union([z.literal(false), loraComplete]),
});

export type StageKind = "cpt" | "sft" | "dpo";

/** The keys a pipeline entry of `kind` may give (documented names and aliases), for docs and flag mapping. */
export function settingKeys(kind: StageKind): string[] {
  return Object.keys(inputFields(kind));
}

function inputFields(kind: StageKind) {
  const optional = <T extends Record<string, z.ZodType>>(fields: T) =>
    Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, v.optional()])) as {
      [K in keyof T]: z.ZodOptional<T[K]>;
    };
  const common = {
    ...optional({ ...trainingFields, ...aliasFields, ...dataFields }),
    lora: z.union([z.literal(false), loraInput]).optional(),
  };
  if (kind === "cpt") return common;
  if (kind === "sft") return { ...common, ...optional(templateFields) };
  return { ...common, ...optional(templateFields), ...optional(dpoFields) };
}

/** The input schema of a stage: every key optional, strict, with did-you-mean errors. */
function inputSchema(kind: StageKind) {
  const fields = inputFields(kind);
  return z.strictObject(fields, { error: unknownKeysError(Object.keys(fields)) });
}

type Issue = { message: string; path: PropertyKey[] };

/**
 * Resolve aliases and lay the given keys over `base` (a `lora` block key by key). Returns the merged object
 * and the issues found (both spellings of one key).
 */
function overlay(
  base: object,
  given: Record<string, unknown>,
): { merged: Record<string, unknown>; issues: Issue[] } {
  const issues: Issue[] = [];
  const merged: Record<string, unknown> = { ...base };
  const aliased = (obj: Record<string, unknown>, aliases: Record<string, string>, path: PropertyKey[]) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(obj)) {
      if (v === undefined) continue;
      const name = aliases[k] ?? k;
      if (name !== k && obj[name] !== undefined) {
        issues.push({
          path: [...path, k],
          message: `"${k}" and "${name}" name the same setting; give one (${name} is the documented name)`,
        });
        continue;
      }
      out[name] = v;
    }
    return out;
  };
  const top = aliased(given, SETTING_ALIASES, []);
  for (const [k, v] of Object.entries(top)) {
    if (k === "lora" && v !== false) {
      const from = isLora(merged.lora) ? merged.lora : PEFT_LORA_DEFAULTS;
      merged.lora = { ...from, ...aliased(v as Record<string, unknown>, LORA_ALIASES, ["lora"]) };
    } else merged[k] = v;
  }
  return { merged, issues };
}

const isLora = (v: unknown): v is PeftLoraSettings => typeof v === "object" && v !== null;

/** Schema of one stage's settings: entries laid over `base`, the result validated against `complete`. */
function stageSchema<S>(kind: StageKind, base: object, complete: z.ZodType<S>): z.ZodType<S> {
  return inputSchema(kind)
    .transform((given, ctx): unknown => {
      const { merged, issues } = overlay(base, given);
      for (const issue of issues) ctx.addIssue({ code: "custom", ...issue, input: given });
      if (kind !== "cpt" && merged.template === undefined) merged.template = "default";
      return merged;
    })
    .pipe(complete);
}

export const cptSettingsSchema = (base: Partial<CptSettings> = {}): z.ZodType<CptSettings> =>
  stageSchema("cpt", base, cptSettingsComplete);
export const sftSettingsSchema = (base: Partial<SftSettings> = {}): z.ZodType<SftSettings> =>
  stageSchema("sft", base, sftSettingsComplete);
export const dpoSettingsSchema = (base: Partial<DpoSettings> = {}): z.ZodType<DpoSettings> =>
  stageSchema("dpo", base, dpoSettingsComplete);

/**
 * Lay partial settings (any spelling) over `base`, as a pipeline entry is laid over a stage's defaults;
 * throws a HippoError naming the key on an unknown key, a bad value or both spellings of one key.
 */
export function overlaySettings<S extends object>(
  kind: StageKind,
  base: S,
  given: Record<string, unknown>,
  where = `${kind} settings`,
): S {
  const fail = (issue: { message: string; path: readonly PropertyKey[] } | undefined) =>
    new HippoError("INVALID_CONFIG", `${where}: ${issue?.message}`, {
      key: issue?.path.map(String).join(".") || undefined,
    });
  const parsed = inputSchema(kind).safeParse(given);
  if (!parsed.success) throw fail(parsed.error.issues[0]);
  const { merged, issues } = overlay(base, parsed.data);
  if (issues[0]) throw fail(issues[0]);
  return merged as S;
}

// ---------------------------------------------------------------------------------------------------------
// Checks the schema cannot express (several keys together).

/**
 * Rules across keys: HF's `constant` schedule has no warmup (say `constant_with_warmup`); label smoothing is
 * cDPO's, for the sigmoid loss; eval_steps needs evaluation data.
 */
export function checkTrainingSettings(
  s: TrainingSettings & Partial<DpoTrainingSettings>,
  options: { hasEvalData?: boolean } = {},
): void {
  if (s.lr_scheduler_type === "constant" && ((s.warmup_steps ?? 0) > 0 || s.warmup_ratio > 0))
    throw new HippoError(
      "INVALID_CONFIG",
      'HF\'s "constant" schedule has no warmup; use "constant_with_warmup" to warm up',
      {
        key: "lr_scheduler_type",
        expected: "constant_with_warmup, or no warmup",
        got: `constant with warmup_${s.warmup_steps ? `steps ${s.warmup_steps}` : `ratio ${s.warmup_ratio}`}`,
      },
    );
  if (s.loss_type !== undefined && s.loss_type !== "sigmoid" && (s.label_smoothing ?? 0) > 0)
    throw new HippoError("INVALID_CONFIG", "label_smoothing (cDPO) applies to the sigmoid loss only", {
      key: "label_smoothing",
      expected: `0 with loss_type ${s.loss_type}`,
      got: String(s.label_smoothing),
    });
  if (options.hasEvalData === false && s.eval_steps !== undefined)
    throw new HippoError("INVALID_CONFIG", "eval_steps needs evaluation data", {
      key: "eval_steps",
      expected: "eval_data as well",
    });
}
