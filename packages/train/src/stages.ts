/**
 * The three stages as plain functions over plain option objects (spread a preset, override fields):
 *
 *   trainCpt({ ...CPT_PRESET, model: { kind: "hf-model", path }, train: packedBlocks, outputDir })
 *   trainSft({ ...SFT_PRESET, model: cptOutput.model, train: sftExamples, outputDir })
 *   trainDpo({ ...DPO_PRESET, model: sftOutput.model, train: preferencePairs, outputDir })
 *
 * Each loads its input (an HF folder, or adapters over one, merged in order: the SFT stage trains a new adapter
 * on base+CPT, DPO on base+CPT+SFT), adds a fresh LoRA adapter (or trains every weight with `lora: "full"`),
 * runs the shared loop, and writes its output into `outputDir`: a PEFT adapter folder (adapter_config.json +
 * adapter_model.safetensors) or, for full fine-tuning, an HF model folder, beside trainer_state.json,
 * metrics.jsonl and the checkpoints. The returned artifact is the next stage's `model`.
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
  writeJsonAtomic,
} from "@hippocrates/core";
import {
  addLoraAdapter,
  type CausalLM as LlamaModel,
  loadAdapter,
  loadModel,
  mergeAdapter,
  peftKey,
  saveAdapter,
  saveModel,
  weightSpecs,
} from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";
import { validateExample } from "./batch.js";
import { evaluateLoss, type LoopConfig, type LoopResult, runTrainingLoop } from "./loop.js";
import type { DpoLossType } from "./losses.js";
import { computeReferenceLogProbs, type DpoItem, dpoTask, lmTask, type TrainTask } from "./tasks.js";

export interface LoraSettings {
  r: number;
  alpha: number;
  dropout: number;
  /** PEFT target_modules names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj). */
  targetModules: string[];
  useRslora: boolean;
}

/** Every training knob of a stage; the presets fill them with the paper's values. */
export interface StageTrainingConfig extends LoopConfig {
  /** A new LoRA adapter with these settings, or "full" to train every weight. */
  lora: LoraSettings | "full";
  /** Truncate longer sequences (right). */
  maxLength?: number;
  /** Per-layer gradient checkpointing: one layer's activations at a time; its linear products are replayed. */
  checkpointLayers?: boolean;
  /** Batch size of evaluation (default microBatchSize). */
  evalBatchSize?: number;
}

export interface StageOptions<Item> extends StageTrainingConfig {
  /** The model to start from: an HF folder, or adapter(s) over one (merged into the base before training). */
  model: ModelArtifact;
  train: Item[];
  eval?: Item[];
  outputDir: string;
  /** Padding token (default: config pad_token_id, else eos_token_id, else 0). Never a target. */
  padId?: number;
  /** Continue from the newest whole checkpoint in outputDir (`"restart"`: drop its checkpoints; see LoopOptions). */
  resume?: boolean | "restart";
  progress?: ProgressReporter;
  signal?: AbortSignal;
}

export interface DpoStageOptions extends StageOptions<TokenizedPreference> {
  beta?: number;
  lossType?: DpoLossType;
  labelSmoothing?: number;
}

export interface StageResult extends PipelineStageOutput {
  loop: LoopResult;
}

/** Load an artifact: an HF folder, or the adapters of a chain merged into their base in order. */
export async function loadArtifact(artifact: ModelArtifact): Promise<LlamaModel> {
  if (artifact.kind === "hf-model") return loadModel(artifact.path);
  if (artifact.kind !== "peft-adapter")
    throw new HippoError("INVALID_ARGUMENT", "unknown model artifact", {
      key: "model.kind",
      expected: "hf-model | peft-adapter",
      got: String((artifact as { kind: unknown }).kind),
    });
  const model = await loadArtifact(artifact.base);
  try {
    const name = `merge-${artifact.path}`;
    await loadAdapter(model, artifact.path, { name });
    mergeAdapter(model, name);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** The HF folder at the bottom of a chain (PEFT's base_model_name_or_path). */
export function basePathOf(artifact: ModelArtifact): string {
  return artifact.kind === "hf-model" ? artifact.path : basePathOf(artifact.base);
}

/**
 * Select what trains: a fresh adapter named "default" (base frozen), or every base weight. Returns the variables
 * in the model's order, a stable name for each (PEFT keys for LoRA, HF names for full fine-tuning) and whether
 * each is held transposed relative to the layout its name promises (LoRA A/B and linear weights are).
 */
export function prepareTrainable(
  model: LlamaModel,
  lora: LoraSettings | "full",
  seed: number,
  basePath: string,
): { variables: tf.Variable[]; names: string[]; transposed: boolean[] } {
  const nameOf = new Map<tf.Variable, string>();
  const flipped = new Set<tf.Variable>();
  if (lora === "full") {
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
    const adapter = addLoraAdapter(model, lora, { name: "default", seed, baseModelNameOrPath: basePath });
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

async function writeOutput(model: LlamaModel, o: StageOptions<unknown>): Promise<ModelArtifact> {
  if (o.lora === "full") {
    await saveModel(model, o.outputDir);
    return { kind: "hf-model", path: o.outputDir };
  }
  await saveAdapter(model, o.outputDir, { name: "default" });
  return { kind: "peft-adapter", path: o.outputDir, base: o.model };
}

/** The loop with the stage's model, task and output: shared by the three stages. */
async function runStage<Item>(
  stage: string,
  o: StageOptions<unknown>,
  model: LlamaModel,
  train: Item[],
  task: TrainTask<Item>,
  evalItems: Item[] | undefined,
  evalMetrics?: () => Promise<Record<string, number>>,
): Promise<StageResult> {
  const { variables, names, transposed } = prepareTrainable(model, o.lora, o.seed, basePathOf(o.model));
  const evaluate =
    evalMetrics ??
    (evalItems && evalItems.length > 0
      ? async () => ({ eval_loss: await evaluateLoss(task, evalItems, o.evalBatchSize ?? o.microBatchSize) })
      : undefined);
  const loop = await runTrainingLoop({
    task,
    train,
    variables,
    names,
    transposed,
    config: { ...o, evalSteps: o.evalSteps ?? (evaluate ? Number.MAX_SAFE_INTEGER : undefined) },
    outputDir: o.outputDir,
    resume: o.resume ?? false,
    ...(evaluate ? { evaluate } : {}),
    ...(o.lora !== "full"
      ? { saveExtra: (dir: string) => saveAdapter(model, dir, { name: "default" }) }
      : {}),
    facts: { stage, base_model: o.model },
    ...(o.progress ? { progress: o.progress } : {}),
    ...(o.signal ? { signal: o.signal } : {}),
    name: stage,
  });
  const artifact = await writeOutput(model, o);
  const metrics: Record<string, number> = {
    train_loss: loop.trainLoss,
    final_loss: loop.lastLoss,
    global_step: loop.globalStep,
  };
  for (const e of loop.logHistory)
    for (const [k, v] of Object.entries(e)) if (k.startsWith("eval_")) metrics[k] = v;
  return {
    model: artifact,
    metrics,
    files: {
      trainer_state: loop.trainerStatePath,
      hippo_state: loop.hippoStatePath,
      metrics: loop.metricsPath,
    },
    loop,
  };
}

function checkExamples(items: TokenizedExample[], key: string): void {
  if (!Array.isArray(items) || items.length === 0)
    throw new HippoError("INVALID_ARGUMENT", "no training examples", { key, got: "0" });
  items.forEach((e, i) => {
    validateExample(e, i);
  });
}

/** Continued pre-training: next-token loss over packed blocks (segmentIds -> per-document attention/positions). */
export async function trainCpt(o: StageOptions<TokenizedExample>): Promise<StageResult> {
  checkExamples(o.train, "train");
  const model = await loadArtifact(o.model);
  try {
    const task = lmTask(model, {
      padId: padIdOf(model, o.padId),
      ...(o.maxLength ? { maxLength: o.maxLength } : {}),
      ...(o.checkpointLayers ? { checkpointLayers: true } : {}),
    });
    return await runStage("cpt", o, model, o.train, task, o.eval);
  } finally {
    model.dispose();
  }
}

/** Instruction tuning: the examples' labels already mask the prompt (IGNORE_INDEX), so only responses count. */
export async function trainSft(o: StageOptions<TokenizedExample>): Promise<StageResult> {
  checkExamples(o.train, "train");
  if (!o.train.some((e) => e.labels.some((l) => l >= 0)))
    throw new HippoError("INVALID_ARGUMENT", "no example has a response token to learn", {
      key: "train[*].labels",
      expected: "labels other than -100",
    });
  const model = await loadArtifact(o.model);
  try {
    const task = lmTask(model, {
      padId: padIdOf(model, o.padId),
      ...(o.maxLength ? { maxLength: o.maxLength } : {}),
      ...(o.checkpointLayers ? { checkpointLayers: true } : {}),
    });
    return await runStage("sft", o, model, o.train, task, o.eval);
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
function referenceKey(pairs: TokenizedPreference[], o: DpoStageOptions): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ model: o.model, maxLength: o.maxLength ?? null, ipo: o.lossType === "ipo" }));
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
  o: DpoStageOptions,
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
    batchSize: o.evalBatchSize ?? o.microBatchSize,
    average: o.lossType === "ipo",
    ...(o.maxLength ? { maxLength: o.maxLength } : {}),
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
export async function trainDpo(o: DpoStageOptions): Promise<StageResult> {
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
      beta: o.beta ?? 0.1,
      lossType: o.lossType ?? "sigmoid",
      labelSmoothing: o.labelSmoothing ?? 0,
      ...(o.maxLength ? { maxLength: o.maxLength } : {}),
      ...(o.checkpointLayers ? { checkpointLayers: true } : {}),
    });
    const evalMetrics = evalItems
      ? () => dpoEvaluate(task, evalItems, o.evalBatchSize ?? o.microBatchSize)
      : undefined;
    return await runStage("dpo", o, model, train, task, evalItems, evalMetrics);
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
