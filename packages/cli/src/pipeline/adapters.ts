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
import type { DpoStageConfig, EvalStageConfig, MergeStageConfig, SftStageConfig } from "../config/schema.js";
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

/**
 * Interim glue until the pipeline registers the train package's stages directly: the validated YAML entry
 * (minus the pipeline's own keys) through the stage's settings schema, then the stage itself.
 */
export async function runTrainingStage(
  kind: "cpt" | "sft" | "dpo",
  input: PipelineStageInput,
  ctx: StageContext,
  settings: RunSettings,
): Promise<PipelineStageOutput> {
  await ensureBackend(settings);
  const train = await import("@hippocrates/train");
  const stage = kind === "cpt" ? train.cptStage() : kind === "sft" ? train.sftStage() : train.dpoStage();
  const given = Object.fromEntries(
    Object.entries(input.config).filter(([k]) => !["kind", "name", "module", "seed"].includes(k)),
  );
  const parsed = await stage.settings["~standard"].validate(given);
  if (parsed.issues) {
    const issue = parsed.issues[0];
    throw new HippoError("INVALID_CONFIG", issue?.message ?? "invalid stage settings", {
      key: issue?.path?.map((p) => String(typeof p === "object" ? p.key : p)).join("."),
    });
  }
  const run = stage.run as (i: PipelineStageInput<unknown>, c: StageContext) => Promise<PipelineStageOutput>;
  return run({ model: input.model, config: parsed.value }, { ...ctx, tokenizer: settings.tokenizer });
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

/** Load an artifact (adapters merged into their base, in order) with the model package's loader. */
export async function loadArtifactModel(artifact: ModelArtifact) {
  const model = await import("@hippocrates/model");
  return model.loadArtifact(artifact);
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
      outputPath: ctx.outputDir,
      logSamples: true,
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
    if (output.results.group_subtasks[task]?.length) continue; // a group's row, not a task's
    for (const k of ["acc", "acc_norm"]) {
      const v = m[`${k},none`];
      if (typeof v === "number") metrics[`${task}/${k}`] = v;
    }
    if (typeof m["acc,none"] === "number") accs.push(m["acc,none"]);
  }
  if (accs.length) metrics["average/acc"] = accs.reduce((a, b) => a + b, 0) / accs.length;
  await mkdir(ctx.outputDir, { recursive: true });
  return { model: input.model, metrics, files: { results: output.files?.results ?? ctx.outputDir } };
}
