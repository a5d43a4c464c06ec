/**
 * The pipeline's training stages: `cptStage()`, `sftStage()` and `dpoStage()` are `PipelineStage`s like a
 * user's own, registered the same way. Each validates its settings (HF/TRL/PEFT names, see settings.ts) over
 * its preset, checks its data before anything runs, and in `run` reads its data file(s) relative to the
 * pipeline file's folder, tokenizes them with the run's tokenizer (@hippocrates/data's TRL formats), trains
 * (`trainCausalLm` / `trainDpo`) and returns the output artifact with its metrics and files.
 *
 * Importing this module loads neither TensorFlow.js nor a model: the training code is imported when a stage
 * runs (`@hippocrates/train/stage` is this module alone). The caller initialises the TensorFlow.js backend
 * before `run` (the pipeline does, from its `backend:` key).
 */
import { resolve } from "node:path";
import {
  HippoError,
  isHippoError,
  type ModelArtifact,
  type PipelineStage,
  type PipelineStageOutput,
  type StageCheckContext,
  type StageContext,
} from "@hippocrates/core";
import type { z } from "zod";
import { CPT_PRESET, DPO_PRESET, SFT_PRESET } from "./presets.js";
import {
  type CptSettings,
  checkTrainingSettings,
  cptSettingsSchema,
  type DpoSettings,
  dpoSettingsSchema,
  overlaySettings,
  type PeftLoraSettings,
  type SftSettings,
  type StageKind,
  sftSettingsSchema,
} from "./settings.js";

/** What a factory takes: any settings to change (documented names), `lora` key by key. */
export type StageDefaults<S> = Partial<Omit<S, "lora">> & { lora?: Partial<PeftLoraSettings> | false };

type AnySettings = CptSettings | SftSettings | DpoSettings;

/** Re-throw a data file's error with the setting that named the file. */
function underKey(key: string, e: unknown): unknown {
  if (!isHippoError(e)) return e;
  return new HippoError(e.code, `${key}: ${e.reason}`, {
    ...e.location,
    key: e.location.key ?? key,
    expected: e.expected,
    got: e.got,
    cause: e,
  });
}

/** The stage's pre-flight check: data files, template, LoRA targets and settings across keys. */
async function checkStage(kind: StageKind, s: AnySettings, ctx: StageCheckContext): Promise<void> {
  checkTrainingSettings(s, { hasEvalData: s.eval_data !== undefined });
  const data = await import("@hippocrates/data");
  if ("template" in s)
    try {
      data.templateFromSetting(s.template);
    } catch (e) {
      throw underKey("template", e);
    }
  if (s.lora !== false && s.lora.target_modules !== "all-linear") {
    const { LINEAR_MODULES } = await import("@hippocrates/model");
    const bad = s.lora.target_modules.find((m) => !(LINEAR_MODULES as readonly string[]).includes(m));
    if (bad !== undefined)
      throw new HippoError("INVALID_CONFIG", "unknown LoRA target module", {
        key: "lora.target_modules",
        expected: `names among ${LINEAR_MODULES.join(", ")}, or "all-linear"`,
        got: JSON.stringify(bad),
      });
  }
  for (const key of ["data", "eval_data"] as const) {
    const file = s[key];
    if (file === undefined) continue;
    try {
      await data.checkTrainingFile(resolve(ctx.baseDir, file), kind);
    } catch (e) {
      throw underKey(key, e);
    }
  }
}

/** Everything the training functions take besides the settings and the data. */
async function prepare(s: AnySettings, kind: StageKind, model: ModelArtifact, ctx: StageContext) {
  const [{ loadTokenizer }, data, train] = await Promise.all([
    import("@hippocrates/tokenizer"),
    import("@hippocrates/data"),
    import("./stages.js"),
  ]);
  const tokenizer = await loadTokenizer(ctx.tokenizer);
  const runtime = {
    seed: s.seed ?? ctx.seed,
    name: kind,
    model,
    outputDir: ctx.outputDir,
    tokenizer: ctx.tokenizer,
    resume: s.overwrite_output_dir ? ("restart" as const) : true,
    progress: ctx.progress,
    signal: ctx.signal,
    padId: tokenizer.padTokenId ?? undefined,
  };
  const file = (p: string) => resolve(ctx.baseDir, p);
  return { tok: tokenizer, data, train, runtime, file };
}

const output = (r: PipelineStageOutput): PipelineStageOutput => ({
  model: r.model,
  metrics: r.metrics,
  files: r.files,
});

async function runCpt(s: CptSettings, model: ModelArtifact, ctx: StageContext): Promise<PipelineStageOutput> {
  const { tok, data, train, runtime, file } = await prepare(s, "cpt", model, ctx);
  const blocks = (path: string) => data.cptBlocks(file(path), tok, { blockSize: s.max_length });
  const items = await blocks(s.data);
  ctx.log(`${items.length} packed blocks of ${s.max_length} tokens`);
  const evalItems = s.eval_data !== undefined ? await blocks(s.eval_data) : undefined;
  return output(await train.trainCausalLm({ ...s, ...runtime, train: items, eval: evalItems }));
}

async function runSft(s: SftSettings, model: ModelArtifact, ctx: StageContext): Promise<PipelineStageOutput> {
  const { tok, data, train, runtime, file } = await prepare(s, "sft", model, ctx);
  const o = { template: data.templateFromSetting(s.template), maxLength: s.max_length };
  const items = await data.sftExamples(file(s.data), tok, o);
  ctx.log(`${items.length} instruction examples`);
  const evalItems = s.eval_data !== undefined ? await data.sftExamples(file(s.eval_data), tok, o) : undefined;
  return output(await train.trainCausalLm({ ...s, ...runtime, train: items, eval: evalItems }));
}

async function runDpo(s: DpoSettings, model: ModelArtifact, ctx: StageContext): Promise<PipelineStageOutput> {
  const { tok, data, train, runtime, file } = await prepare(s, "dpo", model, ctx);
  const o = { template: data.templateFromSetting(s.template) };
  const items = await data.dpoPairs(file(s.data), tok, o);
  ctx.log(`${items.length} preference pairs`);
  const evalItems = s.eval_data !== undefined ? await data.dpoPairs(file(s.eval_data), tok, o) : undefined;
  return output(await train.trainDpo({ ...s, ...runtime, train: items, eval: evalItems }));
}

function trainingStage<S extends AnySettings>(
  kind: StageKind,
  preset: Partial<S>,
  defaults: StageDefaults<S>,
  schema: (base: Partial<S>) => z.ZodType<S>,
  run: (s: S, model: ModelArtifact, ctx: StageContext) => Promise<PipelineStageOutput>,
): PipelineStage<S> {
  const base = overlaySettings(kind, preset, defaults, `${kind}Stage defaults`);
  return {
    kind,
    settings: schema(base),
    check: (settings, ctx) => checkStage(kind, settings, ctx),
    run: (input, ctx) => run(input.config, input.model, ctx),
  };
}

/** Continued pre-training: `{text}` documents packed into blocks of max_length; CPT_PRESET under `defaults`. */
export function cptStage(defaults: StageDefaults<CptSettings> = {}): PipelineStage<CptSettings> {
  return trainingStage("cpt", CPT_PRESET, defaults, cptSettingsSchema, runCpt);
}

/** Instruction tuning on TRL's SFT formats and Alpaca; SFT_PRESET under `defaults`. */
export function sftStage(defaults: StageDefaults<SftSettings> = {}): PipelineStage<SftSettings> {
  return trainingStage("sft", SFT_PRESET, defaults, sftSettingsSchema, runSft);
}

/** DPO on TRL's preference formats, a new adapter over the input model (the reference); DPO_PRESET under `defaults`. */
export function dpoStage(defaults: StageDefaults<DpoSettings> = {}): PipelineStage<DpoSettings> {
  return trainingStage("dpo", DPO_PRESET, defaults, dpoSettingsSchema, runDpo);
}
