/**
 * Training as two plain functions over plain option objects (spread a preset, override fields by HF's names):
 *
 *   trainCausalLm({ ...CPT_PRESET, name: "cpt", model: { kind: "hf-model", path }, train: packedBlocks, outputDir })
 *   trainCausalLm({ ...SFT_PRESET, name: "sft", model: cptOutput.model, train: sftExamples, outputDir })
 *   trainDpo({ ...DPO_PRESET, model: sftOutput.model, train: preferencePairs, outputDir })
 *
 * CPT and SFT are the same computation (next-token loss on the labelled tokens: packed blocks label every
 * token, SFT examples mask the prompt), so they are one function with two presets. Each call loads its input
 * (an HF folder, or adapters over one, merged in order: the SFT stage trains a new adapter on base+CPT, DPO on
 * base+CPT+SFT), adds a fresh LoRA adapter (or trains every weight with `lora: false`), runs the shared loop,
 * and writes its output into `outputDir`: a PEFT adapter folder (adapter_config.json +
 * adapter_model.safetensors) or, for full fine-tuning, an HF model folder, beside trainer_state.json,
 * metrics.jsonl and the checkpoints. The returned artifact is the next stage's `model`.
 *
 * An adapter trained over an adapter chain is an adapter of the merged model, not of the raw base: PEFT
 * loading the raw base and this adapter would silently drop the earlier adapters. So the merged input is
 * written as an HF folder, `outputDir/input_model` (float32: the exact weights the adapter was trained on;
 * a bfloat16 copy would round most of a LoRA delta away), and the adapter's `base_model_name_or_path` is
 * `./input_model`, a path relative to the adapter folder (model's `peftBasePath`); over a plain HF folder it
 * is the relative path to that folder, over a Hub model its id. Never a machine-absolute path.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  HippoError,
  isPlainObject,
  type ModelArtifact,
  type PipelineStageOutput,
  type ProgressReporter,
  parseJsonSafe,
  type TokenizedExample,
  type TokenizedPreference,
  writeDirAtomic,
  writeJsonAtomic,
} from "@hippocrates/core";
import {
  addLoraAdapter,
  copyTokenizerFiles,
  LINEAR_MODULES,
  type CausalLM as LlamaModel,
  type LoraConfig,
  loadArtifact,
  peftBasePath,
  peftKey,
  saveAdapter,
  saveModel,
  weightSpecs,
} from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";
import { validateExample } from "./batch.js";
import { evaluateLoss, type LoopConfig, type LoopResult, runTrainingLoop } from "./loop.js";
import { DEFAULT_SEED } from "./presets.js";
import {
  checkTrainingSettings,
  type DpoTrainingSettings,
  type PeftLoraSettings,
  type TrainingSettings,
} from "./settings.js";
import { computeReferenceLogProbs, type DpoItem, dpoTask, lmTask, type TrainTask } from "./tasks.js";

/** Folder, inside a stage's outputDir, of the merged input model an adapter over a chain points at. */
export const INPUT_MODEL_DIR = "input_model";

export interface TrainOptions<Item> extends TrainingSettings {
  /** The model to start from: an HF folder, or adapter(s) over one (merged into the base before training). */
  model: ModelArtifact;
  train: Item[];
  eval?: Item[];
  outputDir: string;
  /** Name in trainer_state.json and on the progress bar ("cpt", "sft", "dpo"); default "train". */
  name?: string;
  /** Padding token (default: config pad_token_id, else eos_token_id, else 0). Never a target. */
  padId?: number;
  /** Tokenizer folder whose files are copied into the input model this writes (so it loads on its own). */
  tokenizer?: string;
  /** Continue from the newest whole checkpoint in outputDir (`"restart"`: drop its checkpoints; see LoopOptions). */
  resume?: boolean | "restart";
  progress?: ProgressReporter;
  signal?: AbortSignal;
}

export interface DpoTrainOptions extends TrainOptions<TokenizedPreference>, DpoTrainingSettings {}

export interface TrainResult extends PipelineStageOutput {
  loop: LoopResult;
}

/** The loop's options from HF-named settings: the one place the two spellings meet. */
export function loopConfigOf(s: TrainingSettings): LoopConfig {
  return {
    microBatchSize: s.per_device_train_batch_size,
    gradientAccumulation: s.gradient_accumulation_steps,
    epochs: s.num_train_epochs,
    maxSteps: s.max_steps,
    lr: s.learning_rate,
    // HF's "constant" has no warmup (checkTrainingSettings refuses one); "constant_with_warmup" has.
    schedule: s.lr_scheduler_type === "constant_with_warmup" ? "constant" : s.lr_scheduler_type,
    warmupRatio: s.warmup_ratio,
    warmupSteps: s.warmup_steps,
    optimizer: {
      weightDecay: s.weight_decay,
      beta1: s.adam_beta1,
      beta2: s.adam_beta2,
      eps: s.adam_epsilon,
    },
    maxGradNorm: s.max_grad_norm,
    seed: s.seed ?? DEFAULT_SEED,
    logSteps: s.logging_steps,
    evalSteps: s.eval_steps,
    saveSteps: s.save_steps,
    saveTotalLimit: s.save_total_limit,
  };
}

/** PEFT's LoraConfig fields -> the model package's LoraConfig (`all-linear`: every linear layer but the head). */
export function loraConfigOf(l: PeftLoraSettings): LoraConfig {
  return {
    r: l.r,
    alpha: l.lora_alpha,
    dropout: l.lora_dropout,
    targetModules: l.target_modules === "all-linear" ? [...LINEAR_MODULES] : [...l.target_modules],
    useRslora: l.use_rslora,
  };
}

/**
 * Select what trains: a fresh adapter named "default" (base frozen), or every base weight. Returns the variables
 * in the model's order, a stable name for each (PEFT keys for LoRA, HF names for full fine-tuning) and whether
 * each is held transposed relative to the layout its name promises (LoRA A/B and linear weights are).
 */
export function prepareTrainable(
  model: LlamaModel,
  lora: LoraConfig | false,
  seed: number,
): { variables: tf.Variable[]; names: string[]; transposed: boolean[] } {
  const nameOf = new Map<tf.Variable, string>();
  const flipped = new Set<tf.Variable>();
  if (lora === false) {
    model.setFullFineTuning(true);
    const linear = new Set(
      weightSpecs(model.config)
        .filter((w) => w.linear)
        .map((w) => w.name),
    );
    for (const [k, w] of model.weights) {
      nameOf.set(w, k);
      if (linear.has(k)) flipped.add(w);
    }
  } else {
    model.setFullFineTuning(false);
    const adapter = addLoraAdapter(model, lora, { name: "default", seed });
    for (const [k, a] of adapter.a) nameOf.set(a, peftKey(k, "A"));
    for (const [k, b] of adapter.b) nameOf.set(b, peftKey(k, "B"));
    for (const v of [...adapter.a.values(), ...adapter.b.values()]) flipped.add(v);
  }
  const variables = model.trainableVariables();
  const names = variables.map((v) => {
    const n = nameOf.get(v);
    if (n === undefined)
      throw new HippoError("INTERNAL", "a trainable variable has no name", { key: v.name });
    return n;
  });
  return { variables, names, transposed: variables.map((v) => flipped.has(v)) };
}

function padIdOf(model: LlamaModel, padId: number | undefined): number {
  if (padId !== undefined) return padId;
  const c = model.config;
  if (typeof c.pad_token_id === "number") return c.pad_token_id;
  if (typeof c.eos_token_id === "number") return c.eos_token_id;
  if (Array.isArray(c.eos_token_id) && typeof c.eos_token_id[0] === "number") return c.eos_token_id[0];
  return 0;
}

/**
 * The model an adapter in `o.outputDir` is an adapter of, on disk: the input itself when it is an HF model,
 * else the merged chain written to `input_model` (the model as loaded, before the new adapter exists).
 * Returns the path (or Hub id) to point `base_model_name_or_path` at.
 */
async function writeAdapterBase(model: LlamaModel, o: TrainOptions<unknown>): Promise<string> {
  if (o.model.kind === "hf-model") return o.model.path;
  const dir = join(o.outputDir, INPUT_MODEL_DIR);
  await writeDirAtomic(dir, async (tmp) => {
    await saveModel(model, tmp);
    if (o.tokenizer !== undefined) await copyTokenizerFiles(o.tokenizer, tmp);
  });
  return dir;
}

/** Save the "default" adapter into `dir`, its base named relative to `dir`. */
async function saveTrainedAdapter(model: LlamaModel, dir: string, base: string): Promise<void> {
  const adapter = model.adapters.get("default");
  if (adapter === undefined) throw new HippoError("INTERNAL", "no trained adapter", { key: "default" });
  adapter.baseModelNameOrPath = peftBasePath(dir, base);
  await saveAdapter(model, dir, { name: "default" });
}

/** The loop with the stage's model, task and output: shared by the two training functions. */
async function runStage<Item>(
  o: TrainOptions<unknown>,
  model: LlamaModel,
  train: Item[],
  task: TrainTask<Item>,
  evalItems: Item[] | undefined,
  evalMetrics?: () => Promise<Record<string, number>>,
): Promise<TrainResult> {
  const stage = o.name ?? "train";
  const config = loopConfigOf(o);
  const base = o.lora === false ? undefined : await writeAdapterBase(model, o);
  const { variables, names, transposed } = prepareTrainable(
    model,
    o.lora === false ? false : loraConfigOf(o.lora),
    config.seed,
  );
  const batch = o.per_device_eval_batch_size ?? o.per_device_train_batch_size;
  const evaluate =
    evalMetrics ??
    (evalItems && evalItems.length > 0
      ? async () => ({ eval_loss: await evaluateLoss(task, evalItems, batch) })
      : undefined);
  const loop = await runTrainingLoop({
    task,
    train,
    variables,
    names,
    transposed,
    config: { ...config, evalSteps: config.evalSteps ?? (evaluate ? Number.MAX_SAFE_INTEGER : undefined) },
    outputDir: o.outputDir,
    resume: o.resume ?? false,
    ...(evaluate ? { evaluate } : {}),
    ...(base !== undefined ? { saveExtra: (dir: string) => saveTrainedAdapter(model, dir, base) } : {}),
    facts: { stage, base_model: o.model },
    ...(o.progress ? { progress: o.progress } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    name: stage,
  });
  let artifact: ModelArtifact;
  if (base === undefined) {
    await saveModel(model, o.outputDir);
    artifact = { kind: "hf-model", path: o.outputDir };
  } else {
    await saveTrainedAdapter(model, o.outputDir, base);
    artifact = { kind: "peft-adapter", path: o.outputDir, base: o.model };
  }
  const metrics: Record<string, number> = {
    train_loss: loop.trainLoss,
    final_loss: loop.lastLoss,
    global_step: loop.globalStep,
  };
  for (const e of loop.logHistory)
    for (const [k, v] of Object.entries(e)) if (k.startsWith("eval_")) metrics[k] = v;
  const files: Record<string, string> = {
    trainer_state: loop.trainerStatePath,
    hippo_state: loop.hippoStatePath,
    metrics: loop.metricsPath,
  };
  if (base !== undefined && o.model.kind !== "hf-model") files.input_model = base;
  return { model: artifact, metrics, files, loop };
}

function checkExamples(items: TokenizedExample[], key: string): void {
  if (!Array.isArray(items) || items.length === 0)
    throw new HippoError("INVALID_ARGUMENT", "no training examples", { key, got: "0" });
  items.forEach((e, i) => {
    validateExample(e, i);
  });
  if (!items.some((e) => e.labels.some((l) => l >= 0)))
    throw new HippoError("INVALID_ARGUMENT", "no example has a token to learn", {
      key: `${key}[*].labels`,
      expected: "labels other than -100",
    });
}

/**
 * Causal language modelling: the next-token loss over the labelled tokens of each example. CPT gives packed
 * blocks (every token labelled; segmentIds -> per-document attention and positions), SFT gives examples whose
 * prompt is masked (IGNORE_INDEX), so only responses count.
 */
export async function trainCausalLm(o: TrainOptions<TokenizedExample>): Promise<TrainResult> {
  checkTrainingSettings(o, { hasEvalData: o.eval !== undefined });
  checkExamples(o.train, "train");
  if (o.eval) checkExamples(o.eval, "eval");
  const model = await loadArtifact(o.model);
  try {
    const task = lmTask(model, {
      padId: padIdOf(model, o.padId),
      maxLength: o.max_length,
      checkpointLayers: o.gradient_checkpointing,
    });
    return await runStage(o, model, o.train, task, o.eval);
  } finally {
    model.dispose();
  }
}

function checkPairs(pairs: TokenizedPreference[], key: string): void {
  if (!Array.isArray(pairs) || pairs.length === 0)
    throw new HippoError("INVALID_ARGUMENT", "no preference pairs", { key, got: "0" });
  pairs.forEach((p, i) => {
    for (const k of ["promptIds", "chosenIds", "rejectedIds"] as const) {
      const ids = p[k];
      if (!Array.isArray(ids) || !ids.every((t) => Number.isInteger(t) && t >= 0))
        throw new HippoError("INVALID_RECORD", "token ids must be non-negative integers", {
          key: `${key}[${i}].${k}`,
        });
    }
    if (p.chosenIds.length === 0 || p.rejectedIds.length === 0)
      throw new HippoError("INVALID_RECORD", "empty response", { key: `${key}[${i}]` });
  });
}

/** Identity of the pairs and settings the cached reference log-probs belong to. */
function referenceKey(pairs: TokenizedPreference[], o: DpoTrainOptions): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ model: o.model, maxLength: o.max_length, ipo: o.loss_type === "ipo" }));
  for (const p of pairs)
    h.update(`${p.promptIds.join(",")}|${p.chosenIds.join(",")}|${p.rejectedIds.join(",")}\n`);
  return h.digest("hex");
}

/**
 * Reference log-probs of the pairs from the reference model (the input model: base + earlier adapters merged,
 * i.e. the SFT model, never the bare base), computed once and cached in outputDir/reference_logps.json so a
 * resumed run does not recompute them.
 */
async function referenceItems(
  model: LlamaModel,
  pairs: TokenizedPreference[],
  o: DpoTrainOptions,
  padId: number,
  file: string,
): Promise<DpoItem[]> {
  const key = referenceKey(pairs, o);
  try {
    const cached = parseJsonSafe(await readFile(file, "utf8"), file);
    if (
      isPlainObject(cached) &&
      cached.key === key &&
      Array.isArray(cached.chosen) &&
      Array.isArray(cached.rejected) &&
      cached.chosen.length === pairs.length &&
      cached.rejected.length === pairs.length
    ) {
      const c = cached.chosen as number[];
      const r = cached.rejected as number[];
      return pairs.map((p, i) => ({
        ...p,
        referenceChosen: c[i] as number,
        referenceRejected: r[i] as number,
      }));
    }
  } catch {
    // no cache yet (or unreadable): compute
  }
  const items = await computeReferenceLogProbs(model, pairs, {
    padId,
    batchSize: o.per_device_eval_batch_size ?? o.per_device_train_batch_size,
    average: o.loss_type === "ipo",
    maxLength: o.max_length,
  });
  await writeJsonAtomic(file, {
    key,
    chosen: items.map((i) => i.referenceChosen),
    rejected: items.map((i) => i.referenceRejected),
  });
  return items;
}

/**
 * DPO: the input model (SFT adapter merged into the base) is the reference; a NEW adapter on top is the policy.
 * Reference log-probs are computed before the adapter exists (= the policy with its adapter disabled) and cached.
 */
export async function trainDpo(o: DpoTrainOptions): Promise<TrainResult> {
  checkTrainingSettings(o, { hasEvalData: o.eval !== undefined });
  checkPairs(o.train, "train");
  if (o.eval) checkPairs(o.eval, "eval");
  const model = await loadArtifact(o.model);
  try {
    const padId = padIdOf(model, o.padId);
    const train = await referenceItems(model, o.train, o, padId, join(o.outputDir, "reference_logps.json"));
    const evalItems = o.eval?.length
      ? await referenceItems(model, o.eval, o, padId, join(o.outputDir, "reference_logps.eval.json"))
      : undefined;
    const task = dpoTask(model, {
      padId,
      beta: o.beta,
      lossType: o.loss_type,
      labelSmoothing: o.label_smoothing,
      maxLength: o.max_length,
      checkpointLayers: o.gradient_checkpointing,
    });
    const batch = o.per_device_eval_batch_size ?? o.per_device_train_batch_size;
    const evalMetrics = evalItems ? () => dpoEvaluate(task, evalItems, batch) : undefined;
    return await runStage({ name: "dpo", ...o }, model, train, task, evalItems, evalMetrics);
  } finally {
    model.dispose();
  }
}

/** DPO loss and metrics over pairs without gradients, with TRL's `eval_` names (means over the pairs). */
export async function dpoEvaluate(
  task: TrainTask<DpoItem>,
  items: DpoItem[],
  batchSize: number,
): Promise<Record<string, number>> {
  const sums: Record<string, number> = {};
  for (let i = 0; i < items.length; i += batchSize) {
    const chunk = items.slice(i, i + batchSize);
    const named = tf.tidy(() => {
      const r = task.lossSum(chunk, { training: false });
      return { loss: r.loss, ...r.stats };
    });
    for (const [k, t] of Object.entries(named)) {
      sums[k] = (sums[k] ?? 0) + ((await t.data())[0] as number);
      t.dispose();
    }
  }
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(sums)) out[`eval_${k}`] = v / items.length;
  return out;
}
