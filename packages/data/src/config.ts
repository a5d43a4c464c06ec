/**
 * Schemas for the plain-data part of each builder's options, for configuration files (the CLI's
 * `hippo data ...` reads them). The tokenizer, progress reporter, signal and log callback are supplied by the
 * caller, not by a file. `parseDataConfig` turns a schema failure into INVALID_CONFIG naming the key path.
 */
import type { TextTokenizer } from "@hippocrates/core";
import { describeValue, HippoError } from "@hippocrates/core";
import { z } from "zod";
import type { BuildCptOptions, MaybeBatchTokenizer } from "./cpt.js";
import type { BuildPreferenceOptions } from "./preference.js";
import type { BuildSftOptions } from "./sft.js";
import { templateByName } from "./sft-tokenize.js";

const recordFormat = z.enum(["jsonl", "json", "csv", "parquet"]);
const policy = z.enum(["fail", "skip"]);

export const cptSourceSchema = z.strictObject({
  kind: z.enum(["guidelines", "pmc-patients", "pubmedqa", "text"]),
  path: z.string().min(1),
  name: z.string().min(1).optional(),
  format: recordFormat.optional(),
});

export const cptConfigSchema = z.strictObject({
  sources: z.array(cptSourceSchema).min(1),
  outDir: z.string().min(1),
  blockSize: z.number().int().min(2).optional(),
  remainder: z.enum(["pad", "drop"]).optional(),
  dedup: z.boolean().optional(),
  /** Evaluation test files to decontaminate against (see readTestTexts). */
  decontaminateAgainst: z.array(z.string().min(1)).optional(),
  ngram: z.number().int().min(1).optional(),
  onBadRecord: policy.optional(),
  writeDocuments: z.boolean().optional(),
  seed: z.number().int().optional(),
  batchSize: z.number().int().min(1).optional(),
});

export const mixtureSourceSchema = z.strictObject({
  format: z.enum(["alpaca", "sharegpt", "chat", "medqa", "medmcqa", "pubmedqa"]),
  path: z.string().min(1),
  name: z.string().min(1).optional(),
  fileFormat: recordFormat.optional(),
  style: z.enum(["meditron", "harness"]).optional(),
  count: z.union([z.number().int().min(0), z.literal("all")]).optional(),
  weight: z.number().min(0).optional(),
});

export const sftConfigSchema = z.strictObject({
  sources: z.array(mixtureSourceSchema).min(1),
  outDir: z.string().min(1),
  seed: z.number().int().optional(),
  total: z.number().int().min(0).optional(),
  decontaminateAgainst: z.array(z.string().min(1)).optional(),
  ngram: z.number().int().min(1).optional(),
  onBadRecord: policy.optional(),
  /** Prompt template for tokenized.jsonl: "default", "chatml" or "tokenizer". */
  template: z.enum(["default", "chatml", "tokenizer"]).optional(),
  maxLength: z.number().int().min(1).optional(),
  addBos: z.boolean().optional(),
});

export const judgeConfigSchema = z.strictObject({
  baseUrl: z.url().optional(),
  concurrency: z.number().int().min(1).optional(),
  maxRetries: z.number().int().min(0).optional(),
  baseDelayMs: z.number().min(0).optional(),
  maxDelayMs: z.number().min(0).optional(),
  timeoutMs: z.number().min(1).optional(),
  pricePer1kPrompt: z.number().min(0).optional(),
  pricePer1kCompletion: z.number().min(0).optional(),
});

export const preferenceConfigSchema = z.strictObject({
  input: z.string().min(1),
  outDir: z.string().min(1),
  model: z.string().min(1),
  judge: judgeConfigSchema.optional(),
  cachePath: z.string().min(1).optional(),
  pairs: z.enum(["best-vs-rest", "best-vs-worst", "all"]).optional(),
  seed: z.number().int().optional(),
  maxTokens: z.number().int().min(1).optional(),
  onBadRecord: policy.optional(),
});

export type CptConfig = z.infer<typeof cptConfigSchema>;
export type SftConfig = z.infer<typeof sftConfigSchema>;
export type PreferenceConfig = z.infer<typeof preferenceConfigSchema>;

/** Validate a configuration value; `file` names the config file in the error. */
export function parseDataConfig<S extends z.ZodType>(schema: S, value: unknown, file?: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path ?? [];
  let got: unknown = value;
  for (const k of path)
    got = got !== null && typeof got === "object" ? (got as Record<PropertyKey, unknown>)[k] : undefined;
  throw new HippoError("INVALID_CONFIG", issue?.message ?? "invalid configuration", {
    file,
    key: path.map(String).join(".") || undefined,
    got: got === undefined ? "missing" : describeValue(got),
  });
}

/** Builder options from a validated CPT config and the caller's tokenizer. */
export function cptOptionsFromConfig(config: CptConfig, tokenizer: MaybeBatchTokenizer): BuildCptOptions {
  return { ...config, tokenizer };
}

/** Builder options from a validated SFT config; with a tokenizer, tokenized.jsonl is written too. */
export function sftOptionsFromConfig(config: SftConfig, tokenizer?: TextTokenizer): BuildSftOptions {
  const { template, maxLength, addBos, ...rest } = config;
  return {
    ...rest,
    ...(tokenizer
      ? { tokenizer, tokenize: { template: templateByName(template ?? "default"), maxLength, addBos } }
      : {}),
  };
}

export function preferenceOptionsFromConfig(config: PreferenceConfig): BuildPreferenceOptions {
  return { ...config };
}
