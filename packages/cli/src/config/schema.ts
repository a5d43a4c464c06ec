/**
 * The schema of `pipeline.yaml`'s own keys: the top level and the keys every stage entry has (`kind`, `name`,
 * `from`, `module`, `seed`). Every other key of a stage entry is that stage's settings, validated by the
 * stage's own `settings` schema (see pipeline/registry.ts): the pipeline file knows nothing of them.
 *
 * Objects are strict: an unknown key is an error with a did-you-mean (a misspelt `ouput_dir` would otherwise
 * silently fall back to the default).
 */
import { z } from "zod";

const nonNegInt = z.number().int().nonnegative();
const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, "letters, digits, '_', '.', '-'");

/** A base model a branch starts from: an HF folder or Hub id, and its tokenizer. */
export const baseModelSchema = z.strictObject({
  /** HF model folder (config.json + safetensors), relative to the pipeline file, or a Hub id `org/name[@rev]`. */
  model: z.string().min(1),
  /** Hub revision of `model` (branch, tag or commit; the same as `org/name@rev`). */
  revision: z.string().min(1).optional(),
  /** Tokenizer folder or Hub id (default: the model's). */
  tokenizer: z.string().min(1).optional(),
});

export const pipelineSchema = z.strictObject({
  /** Name of the run (default: the config file's name). */
  name: id.optional(),
  /** The base model, named `base`: the first stage starts from it (`from: base`). A folder or a Hub id. */
  model: z.string().min(1).optional(),
  /** Hub revision of `model` (branch, tag or commit; the same as `org/name@rev`). */
  revision: z.string().min(1).optional(),
  /** Tokenizer of `model`: a folder or a Hub id (default: the model's). */
  tokenizer: z.string().min(1).optional(),
  /** More base models by name, for branches that start elsewhere (`from: mistral`). */
  models: z.record(id, baseModelSchema).optional(),
  /** Run folder (default: runs/<name> beside the config). */
  output_dir: z.string().min(1).optional(),
  seed: nonNegInt.optional(),
  backend: z.enum(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"]).optional(),
  threads: z.number().int().positive().optional(),
  /** Modules whose exported PipelineStages are registered under their kinds (replacing built-ins). */
  stage_modules: z.array(z.string().min(1)).optional(),
  stages: z.array(z.looseObject({ kind: z.string().min(1) })).min(1),
});

/** The keys of a stage entry that are the pipeline's; the rest are the stage's settings. */
export const stageEntrySchema = z.looseObject({
  /** What the stage does: a registered kind (cpt, sft, dpo, merge, eval, or a user's). */
  kind: z.string().min(1),
  /** Unique id in the run (default: the kind, numbered when it repeats). */
  name: id.optional(),
  /** The stage's input: an earlier stage's name, `base`, or a name under `models:` (default: the previous stage). */
  from: z.string().min(1).optional(),
  /** A module whose PipelineStage runs this entry (path relative to the pipeline file). */
  module: z.string().min(1).optional(),
  /** Seed for this stage (default: the run's seed). */
  seed: nonNegInt.optional(),
});

export const STAGE_ENTRY_KEYS = ["kind", "name", "from", "module", "seed"] as const;

export type PipelineTopLevel = z.infer<typeof pipelineSchema>;
export type Backend = NonNullable<PipelineTopLevel["backend"]>;
