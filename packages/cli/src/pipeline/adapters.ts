/**
 * Adapters from validated stage settings (pipeline.yaml, snake_case) to the functions of the train, eval and
 * model packages. They read the stage's data files, tokenize with the run's tokenizer, call the package
 * function, and return the core `PipelineStageOutput`. Packages are imported lazily (TensorFlow.js loads only
 * when a stage needs it).
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { extname, join } from "node:path";
import {
  HippoError,
  type InstructionRecord,
  type LogLikelihoodResult,
  type ModelArtifact,
  type PipelineStageInput,
  type PipelineStageOutput,
  type PreferenceRecord,
  readJsonlObjects,
  type ScoringModel,
  type StageContext,
  type TextDocument,
  type TokenizedExample,
  type TokenizedPreference,
} from "@hippocrates/core";
import type { CausalLM } from "@hippocrates/model";
import type { HfTokenizer } from "@hippocrates/tokenizer";
import type {
  DpoStageConfig,
  EvalStageConfig,
  MergeStageConfig,
  SftStageConfig,
  TrainingStageConfig,
} from "../config/schema.js";
import { localPromptScorer } from "../serve/local.js";
import type { RunSettings } from "./builtin.js";

/** The objects of a JSONL data file; a bad line is an error naming file and line. */
export async function readJsonlRecords(file: string): Promise<Record<string, unknown>[]> {
  return (await readJsonlObjects(file)).map((r) => r.record);
}

function field(rec: Record<string, unknown>, key: string, file: string, line: number): string {
  const v = rec[key];
  if (typeof v !== "string")
    throw new HippoError("INVALID_RECORD", `missing string field "${key}"`, {
      file,
      line,
      key,
      expected: "string",
      got: typeof v,
    });
  return v;
}

export async function ensureBackend(settings: RunSettings): Promise<unknown> {
  const { initBackend } = await import("@hippocrates/backend");
  return initBackend({
    backend: settings.backend,
    ...(settings.threads ? { threads: settings.threads } : {}),
  });
}

export async function loadRunTokenizer(dir: string): Promise<HfTokenizer> {
  const { loadTokenizer } = await import("@hippocrates/tokenizer");
  return loadTokenizer(dir);
}

// ---------------------------------------------------------------------------------------------------------
// Tokenization of the three kinds of training data.

/** CPT: documents (`text`) -> tokens -> packed blocks with EOS between documents (data package's packer). */
export async function cptBlocks(
  file: string,
  tok: HfTokenizer,
  blockSize: number,
): Promise<TokenizedExample[]> {
  const { createPacker } = await import("@hippocrates/data");
  if (tok.eosTokenId === null)
    throw new HippoError("INVALID_CONFIG", "CPT packing needs a tokenizer with an EOS token", {
      key: "tokenizer",
    });
  const packer = createPacker({
    blockSize,
    eosTokenId: tok.eosTokenId,
    ...(tok.padTokenId !== null ? { padTokenId: tok.padTokenId } : {}),
  });
  const blocks: TokenizedExample[] = [];
  const records = await readJsonlRecords(file);
  for (const [i, rec] of records.entries()) {
    const doc = { text: field(rec, "text", file, i + 1) } as Pick<TextDocument, "text">;
    blocks.push(...packer.add(await tok.encode(doc.text, { addSpecialTokens: false })));
  }
  blocks.push(...packer.finish());
  return blocks;
}

/** Turn `template` from the YAML into the data package's template: a name, or a string with {prompt}. */
async function sftTemplate(template: string | undefined) {
  const data = await import("@hippocrates/data");
  if (template === undefined) return data.DEFAULT_TEMPLATE;
  if (!template.includes("{prompt}")) return data.templateByName(template);
  return {
    kind: "string" as const,
    name: "custom",
    system: "{content}\n",
    user: template.replace("{prompt}", "{content}"),
    assistantSuffix: "",
    separator: "\n",
  };
}

/** SFT: instruction records (`messages`, or Alpaca's `instruction`/`input`/`output`) -> masked examples. */
export async function sftExamples(
  file: string,
  tok: HfTokenizer,
  c: SftStageConfig,
): Promise<TokenizedExample[]> {
  const { tokenizeInstruction } = await import("@hippocrates/data");
  const template = await sftTemplate(c.template);
  const out: TokenizedExample[] = [];
  for (const [i, rec] of (await readJsonlRecords(file)).entries()) {
    let messages = rec.messages as InstructionRecord["messages"] | undefined;
    if (!Array.isArray(messages)) {
      const instruction = field(rec, "instruction", file, i + 1);
      const input = typeof rec.input === "string" && rec.input ? `\n${rec.input}` : "";
      messages = [
        { role: "user", content: instruction + input },
        { role: "assistant", content: field(rec, "output", file, i + 1) },
      ];
    }
    const ex = await tokenizeInstruction(
      { id: String(rec.id ?? i), source: String(rec.source ?? file), messages },
      tok,
      {
        template,
        addBos: tok.addBosToken,
        addEos: true,
        ...(c.max_length ? { maxLength: c.max_length } : {}),
      },
    );
    if (ex) out.push(ex);
  }
  return out;
}

/** DPO: `{prompt, chosen, rejected}` -> token ids; the prompt through the SFT template, responses + EOS. */
export async function dpoPairs(
  file: string,
  tok: HfTokenizer,
  c: DpoStageConfig,
): Promise<TokenizedPreference[]> {
  const template = await sftTemplate(c.template);
  const out: TokenizedPreference[] = [];
  for (const [i, rec] of (await readJsonlRecords(file)).entries()) {
    const pair = {
      prompt: field(rec, "prompt", file, i + 1),
      chosen: field(rec, "chosen", file, i + 1),
      rejected: field(rec, "rejected", file, i + 1),
    } as Pick<PreferenceRecord, "prompt" | "chosen" | "rejected">;
    const promptText =
      template.kind === "tokenizer"
        ? tok.applyChatTemplate([{ role: "user", content: pair.prompt }], { addGenerationPrompt: true })
        : template.user.replace("{content}", pair.prompt);
    const bos =
      tok.addBosToken && tok.bosTokenId !== null && template.kind !== "tokenizer" ? [tok.bosTokenId] : [];
    const eos = tok.eosTokenId !== null ? [tok.eosTokenId] : [];
    const respIds = async (s: string) => [
      ...(await tok.encode(template.kind === "tokenizer" ? ` ${s}` : s, { addSpecialTokens: false })),
      ...eos,
    ];
    out.push({
      promptIds: [...bos, ...(await tok.encode(promptText, { addSpecialTokens: false }))],
      chosenIds: await respIds(pair.chosen),
      rejectedIds: await respIds(pair.rejected),
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Stages.

function trainOverrides(c: TrainingStageConfig, preset: Record<string, unknown>): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  if (c.epochs !== undefined) o.epochs = c.epochs;
  if (c.max_steps !== undefined) o.maxSteps = c.max_steps;
  if (c.lr !== undefined) o.lr = c.lr;
  if (c.batch_size !== undefined) o.microBatchSize = c.batch_size;
  if (c.grad_accum !== undefined) o.gradientAccumulation = c.grad_accum;
  if (c.max_length !== undefined) o.maxLength = c.max_length;
  if (c.scheduler !== undefined) o.schedule = c.scheduler;
  if (c.warmup_steps !== undefined) o.warmupSteps = c.warmup_steps;
  if (c.warmup_ratio !== undefined) o.warmupRatio = c.warmup_ratio;
  if (c.weight_decay !== undefined)
    o.optimizer = { ...(preset.optimizer as object), weightDecay: c.weight_decay };
  if (c.max_grad_norm !== undefined) o.maxGradNorm = c.max_grad_norm;
  if (c.save_every !== undefined) o.saveSteps = c.save_every;
  if (c.gradient_checkpointing !== undefined) o.checkpointLayers = c.gradient_checkpointing;
  if (c.eval_every !== undefined) o.evalSteps = c.eval_every;
  if (c.log_every !== undefined) o.logSteps = c.log_every;
  if (c.lora === false) o.lora = "full";
  else if (c.lora)
    o.lora = {
      r: c.lora.r,
      alpha: c.lora.alpha,
      dropout: c.lora.dropout ?? 0,
      targetModules: c.lora.target_modules,
      useRslora: false,
    };
  if (c.kind === "dpo") {
    if (c.beta !== undefined) o.beta = c.beta;
    if (c.loss_type !== undefined) o.lossType = c.loss_type;
    if (c.label_smoothing !== undefined) o.labelSmoothing = c.label_smoothing;
  }
  return o;
}

export async function runTrainingStage(
  kind: "cpt" | "sft" | "dpo",
  input: PipelineStageInput,
  ctx: StageContext,
  settings: RunSettings,
): Promise<PipelineStageOutput> {
  const c = input.config as unknown as TrainingStageConfig;
  await ensureBackend(settings);
  const train = await import("@hippocrates/train");
  const tok = await loadRunTokenizer(settings.tokenizer);
  const preset = { cpt: train.CPT_PRESET, sft: train.SFT_PRESET, dpo: train.DPO_PRESET }[kind] as Record<
    string,
    unknown
  >;
  const options = {
    ...preset,
    ...trainOverrides(c, preset),
    seed: ctx.seed,
    model: input.model,
    outputDir: ctx.outputDir,
    resume: settings.restart ? ("restart" as const) : true,
    progress: ctx.progress,
    signal: ctx.signal,
    ...(tok.padTokenId !== null ? { padId: tok.padTokenId } : {}),
  };
  const maxLength = ((options as Record<string, unknown>).maxLength as number | undefined) ?? 1024;
  let result: PipelineStageOutput;
  if (kind === "cpt") {
    const items = await cptBlocks(c.data, tok, maxLength);
    const evalItems = c.eval_data ? await cptBlocks(c.eval_data, tok, maxLength) : undefined;
    ctx.log(`${items.length} packed blocks of ${maxLength} tokens`);
    result = await train.trainCpt({
      ...(options as Parameters<typeof train.trainCpt>[0]),
      train: items,
      ...(evalItems ? { eval: evalItems } : {}),
    });
  } else if (kind === "sft") {
    const items = await sftExamples(c.data, tok, c as SftStageConfig);
    const evalItems = c.eval_data ? await sftExamples(c.eval_data, tok, c as SftStageConfig) : undefined;
    ctx.log(`${items.length} instruction examples`);
    result = await train.trainSft({
      ...(options as Parameters<typeof train.trainSft>[0]),
      train: items,
      ...(evalItems ? { eval: evalItems } : {}),
    });
  } else {
    const items = await dpoPairs(c.data, tok, c as DpoStageConfig);
    const evalItems = c.eval_data ? await dpoPairs(c.eval_data, tok, c as DpoStageConfig) : undefined;
    ctx.log(`${items.length} preference pairs`);
    result = await train.trainDpo({
      ...(options as Parameters<typeof train.trainDpo>[0]),
      train: items,
      ...(evalItems ? { eval: evalItems } : {}),
    });
  }
  return { model: result.model, metrics: result.metrics, files: result.files };
}

const TOKENIZER_FILES = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "tokenizer.model",
  "chat_template.jinja",
];

/** Copy the tokenizer files beside a model so the folder is usable on its own (`hippo serve DIR`). */
export async function copyTokenizerFiles(from: string, to: string): Promise<void> {
  for (const f of TOKENIZER_FILES) {
    if (existsSync(join(from, f)) && !existsSync(join(to, f))) await copyFile(join(from, f), join(to, f));
  }
}

/** Load an artifact (adapters merged into their base, in order) with the train package's loader. */
export async function loadArtifactModel(artifact: ModelArtifact) {
  const train = await import("@hippocrates/train");
  return train.loadArtifact(artifact);
}

export async function runMergeStage(
  input: PipelineStageInput,
  ctx: StageContext,
  settings: RunSettings,
): Promise<PipelineStageOutput> {
  const c = input.config as unknown as MergeStageConfig;
  if (input.model.kind === "hf-model") {
    ctx.log("input is already a full model: nothing to merge");
    return { model: input.model, metrics: {}, files: {} };
  }
  await ensureBackend(settings);
  const { saveModel } = await import("@hippocrates/model");
  const model = await loadArtifactModel(input.model);
  const out = join(ctx.outputDir, "model");
  try {
    const dtype = c.dtype === "float16" ? "F16" : c.dtype === "bfloat16" ? "BF16" : "F32";
    await saveModel(model, out, { dtype });
  } finally {
    model.dispose();
  }
  await copyTokenizerFiles(settings.tokenizer, out);
  return { model: { kind: "hf-model", path: out }, metrics: {}, files: { model: out } };
}

/**
 * The model package's ScoringModel (shared-context batched scoring) when it is there; otherwise one forward
 * per request through the server's per-token scorer (lm-evaluation-harness's semantics, left truncation).
 */
export async function scoringModelFor(
  model: CausalLM,
  name: string,
  batchSize?: number,
): Promise<ScoringModel> {
  const mod = (await import("@hippocrates/model")) as Record<string, unknown>;
  if (typeof mod.asScoringModel === "function") {
    return (mod.asScoringModel as (m: CausalLM, o: Record<string, unknown>) => ScoringModel)(model, {
      name,
      ...(batchSize ? { batchSize } : {}),
    });
  }
  const maxLength = model.config.max_position_embeddings;
  const scorer = localPromptScorer(model, maxLength);
  return {
    name,
    maxLength,
    async logLikelihood(requests) {
      const out: LogLikelihoodResult[] = [];
      for (const { context, continuation } of requests) {
        const seq = [...context, ...continuation].slice(-(maxLength + 1));
        const [r] = await scorer.tokenLogprobs([seq], 1);
        let logprob = 0;
        let isGreedy = true;
        for (let i = seq.length - continuation.length; i < seq.length; i++) {
          logprob += (r?.logprobs[i] ?? Number.NaN) as number;
          const best = [...(r?.top[i] ?? new Map<number, number>()).keys()][0];
          if (best !== seq[i]) isGreedy = false;
        }
        out.push({ logprob, isGreedy });
      }
      return out;
    },
  };
}

/** Task names, or task-definition files (JSON) loaded through the eval package. */
export async function resolveTasks(tasks: string[]) {
  const ev = await import("@hippocrates/eval");
  return Promise.all(
    tasks.map((t) => (extname(t) === ".json" || existsSync(t) ? ev.loadTaskFile(t) : Promise.resolve(t))),
  );
}

export async function runEvalStage(
  input: PipelineStageInput,
  ctx: StageContext,
  settings: RunSettings,
): Promise<PipelineStageOutput> {
  const c = input.config as unknown as EvalStageConfig;
  await ensureBackend(settings);
  const ev = await import("@hippocrates/eval");
  const tok = await loadRunTokenizer(settings.tokenizer);
  const tasks = await resolveTasks(c.tasks);
  const model = await loadArtifactModel(input.model);
  let output: Awaited<ReturnType<typeof ev.evaluate>>;
  try {
    // A fresh evaluation of a (possibly retrained) model must not reuse cached requests of an earlier one.
    const cacheDir = join(ctx.outputDir, "cache");
    output = await ev.evaluate({
      model: await scoringModelFor(model, input.model.path, c.batch_size),
      tokenizer: tok,
      tasks,
      ...(c.num_fewshot !== undefined ? { numFewshot: c.num_fewshot } : {}),
      ...(c.limit !== undefined ? { limit: c.limit } : {}),
      ...(c.profile ? { profile: c.profile } : {}),
      dataDir: c.data_dir ?? ctx.runDir,
      cacheDir,
      writeOut: ctx.outputDir,
      progress: ctx.progress,
      signal: ctx.signal,
      ...(c.batch_size ? { batchSize: c.batch_size } : {}),
    });
    await rm(cacheDir, { recursive: true, force: true });
  } finally {
    model.dispose();
  }
  const metrics: Record<string, number> = {};
  const accs: number[] = [];
  for (const [task, m] of Object.entries(output.results.results)) {
    for (const k of ["acc", "acc_norm"]) {
      const v = m[k];
      if (typeof v === "number") metrics[`${task}/${k}`] = v;
    }
    if (typeof m.acc === "number") accs.push(m.acc);
  }
  if (accs.length) metrics["average/acc"] = accs.reduce((a, b) => a + b, 0) / accs.length;
  await mkdir(ctx.outputDir, { recursive: true });
  return { model: input.model, metrics, files: { results: join(ctx.outputDir, "results.json") } };
}
