/**
 * The training loop shared by CPT, SFT and DPO. Read it top to bottom:
 *
 *   plan the steps -> build AdamW -> resume from the newest whole checkpoint, if asked
 *   for each optimizer step:
 *     take the next batch of (microBatchSize x gradientAccumulation) items in the seeded order
 *     for each micro-batch: gradients of (loss summed over its units / units of the whole batch), summed
 *     clip the global norm, AdamW update with the scheduled learning rate
 *     log (JSONL + progress bar), evaluate and checkpoint every N steps, stop cleanly on abort
 *   write trainer_state.json (transformers' TrainerState) and hippo_state.json (our facts, the run's train_loss)
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import {
  appendJsonl,
  createRng,
  HippoError,
  type ProgressReporter,
  type Rng,
  silentProgress,
  writeJsonAtomic,
} from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { type AdamWConfig, createAdamW } from "./adamw.js";
import {
  HIPPO_STATE,
  type LogEntry,
  loadCheckpoint,
  type ResumeState,
  removeCheckpoints,
  saveCheckpoint,
  scanCheckpoints,
  TRAINER_STATE,
  trainerStateJson,
} from "./checkpoint.js";
import { clipByGlobalNorm } from "./clip.js";
import { truncateJsonlAfterStep } from "./metrics.js";
import { learningRateAt, type ScheduleConfig, type ScheduleKind, validateSchedule } from "./schedule.js";
import type { TrainTask } from "./tasks.js";

export interface LoopConfig {
  /** Items per forward/backward pass (HF per_device_train_batch_size). */
  microBatchSize: number;
  /** Micro-batches per optimizer step (HF gradient_accumulation_steps). */
  gradientAccumulation: number;
  epochs: number;
  /** Stop after this many optimizer steps (overrides epochs when smaller). */
  maxSteps?: number;
  lr: number;
  schedule: ScheduleKind;
  /** Warmup as a fraction of the total steps (HF warmup_ratio); `warmupSteps` wins when given. */
  warmupRatio?: number;
  warmupSteps?: number;
  minLrRatio?: number;
  optimizer?: AdamWConfig;
  /** Global-norm clipping; 0 disables. Default 1.0 (HF). */
  maxGradNorm?: number;
  seed: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Log every N steps (default 1). */
  logSteps?: number;
  /** Evaluate every N steps (and at the end) when an evaluator is given. */
  evalSteps?: number;
  /** Checkpoint every N steps (and at the end and on abort). 0 = only at the end/abort. */
  saveSteps?: number;
  /** Keep only the newest N checkpoints. */
  saveTotalLimit?: number;
}

export interface LoopOptions<Item> {
  task: TrainTask<Item>;
  train: readonly Item[];
  /** Variables to train and their stable names (checkpoint keys). */
  variables: tf.Variable[];
  names: string[];
  /**
   * Per variable: held transposed in memory relative to the layout its name promises (PEFT/HF names: LoRA A/B
   * and linear weights of @hippocrates/model); checkpoints store the named layout. Default: none.
   */
  transposed?: boolean[];
  config: LoopConfig;
  outputDir: string;
  /**
   * `true`: continue from the newest whole checkpoint in outputDir, if there is one (a corrupt newer one is
   * skipped with a log line; when every checkpoint is corrupt the run stops with an error). `"restart"`: remove
   * the checkpoints of outputDir and start from step 0. `false` (default): refuse an outputDir with checkpoints.
   */
  resume?: boolean | "restart";
  /** Returns metrics like { eval_loss }; called every evalSteps and at the end. */
  evaluate?: () => Promise<Record<string, number>>;
  /** Adds files to each checkpoint folder (e.g. a loadable PEFT adapter). */
  saveExtra?: (dir: string) => Promise<void>;
  /** The stage's facts (stage name, base model, ...), recorded in hippo_state.json. */
  facts?: Record<string, unknown>;
  /** Where notices go (a checkpoint skipped, a restart); default: stderr. */
  log?: (line: string) => void;
  progress?: ProgressReporter;
  signal?: AbortSignal;
  /** Name on the progress bar. */
  name?: string;
}

export interface LoopResult {
  globalStep: number;
  logHistory: LogEntry[];
  /** Mean training loss over every step of the run, before and after any resume (HF `train_loss`). */
  trainLoss: number;
  /** Loss of the last step. */
  lastLoss: number;
  trainerStatePath: string;
  /** hippo_state.json: the stage's facts, settings and train_loss. */
  hippoStatePath: string;
  metricsPath: string;
}

export function planSteps(
  numItems: number,
  c: LoopConfig,
): { stepsPerEpoch: number; totalSteps: number; itemsPerStep: number } {
  const itemsPerStep = c.microBatchSize * c.gradientAccumulation;
  const stepsPerEpoch = Math.ceil(numItems / itemsPerStep);
  const full = stepsPerEpoch * c.epochs;
  return {
    stepsPerEpoch,
    itemsPerStep,
    totalSteps: c.maxSteps !== undefined ? Math.min(c.maxSteps, full) : full,
  };
}

export function validateLoopConfig(c: LoopConfig, numItems: number): void {
  const posInt = (k: keyof LoopConfig) => {
    const v = c[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 1)
      throw new HippoError("INVALID_CONFIG", "must be a positive integer", { key: k, got: String(v) });
  };
  posInt("microBatchSize");
  posInt("gradientAccumulation");
  posInt("epochs");
  if (c.maxSteps !== undefined) posInt("maxSteps");
  if (numItems < 1)
    throw new HippoError("INVALID_ARGUMENT", "no training items", { key: "train", got: "0 items" });
  if (c.warmupRatio !== undefined && !(c.warmupRatio >= 0 && c.warmupRatio < 1))
    throw new HippoError("INVALID_CONFIG", "warmupRatio must be in [0, 1)", {
      key: "warmupRatio",
      got: String(c.warmupRatio),
    });
}

function scheduleOf(c: LoopConfig, totalSteps: number): ScheduleConfig {
  const warmupSteps = c.warmupSteps ?? Math.ceil((c.warmupRatio ?? 0) * totalSteps);
  const s: ScheduleConfig = {
    kind: c.schedule,
    lr: c.lr,
    warmupSteps,
    totalSteps,
    minLrRatio: c.minLrRatio ?? 0,
  };
  validateSchedule(s, "config");
  return s;
}

/** Seed of the dropout RNG of one optimizer step (micro-batch i uses seed + i): a function of the step only. */
function stepSeed(seed: number, step: number): number {
  return (Math.imul(seed, 0x9e3779b1) + Math.imul(step + 1, 0x85ebca6b)) >>> 0;
}

/** This epoch's order of item indices. The RNG's state before the call is what a checkpoint records. */
function epochOrder(rng: Rng, n: number, shuffle: boolean): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  return shuffle ? rng.shuffle(order) : order;
}

/** What must match between a checkpoint and the run that resumes it. */
function fingerprint(c: LoopConfig, numItems: number): Record<string, unknown> {
  return {
    microBatchSize: c.microBatchSize,
    gradientAccumulation: c.gradientAccumulation,
    epochs: c.epochs,
    seed: c.seed,
    shuffle: c.shuffle ?? true,
    numItems,
  };
}

export async function runTrainingLoop<Item>(o: LoopOptions<Item>): Promise<LoopResult> {
  const { task, train, variables, names, config: c, outputDir } = o;
  validateLoopConfig(c, train.length);
  if (names.length !== variables.length)
    throw new HippoError("INVALID_ARGUMENT", "one name per variable", {
      expected: String(variables.length),
      got: String(names.length),
    });
  const plan = planSteps(train.length, c);
  const schedule = scheduleOf(c, plan.totalSteps);
  const optimizer = createAdamW(variables, c.optimizer);
  const metricsPath = join(outputDir, "metrics.jsonl");
  const shuffle = c.shuffle ?? true;
  const fp = fingerprint(c, train.length);
  await mkdir(outputDir, { recursive: true });
  const rng = createRng(c.seed);
  let state: ResumeState = {
    globalStep: 0,
    epoch: 0,
    position: 0,
    dataRngState: rng.getState(),
    tokensSeen: 0,
    lossSum: 0,
    logHistory: [],
    stage: fp,
  };
  const log = o.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const params = { variables, names, optimizer, ...(o.transposed ? { transposed: o.transposed } : {}) };

  const scan = await scanCheckpoints(outputDir);
  const found = scan.dir !== undefined || scan.rejected.length > 0;
  if (found && !o.resume)
    throw new HippoError(
      "INVALID_ARGUMENT",
      'the output folder holds checkpoints of an earlier run; pass resume: true to continue it, resume: "restart" to start over, or use an empty folder',
      { file: scan.dir ?? outputDir, key: "resume" },
    );
  if (found && o.resume === "restart") {
    const removed = await removeCheckpoints(outputDir);
    log(
      `restart: removed ${removed.length} checkpoint(s) of ${outputDir} (${removed.join(", ")}); starting at step 0`,
    );
  } else if (o.resume && scan.dir === undefined && scan.rejected.length > 0) {
    throw new HippoError(
      "INVALID_FORMAT",
      `every checkpoint in ${outputDir} is corrupt or incomplete, so the run cannot resume: ${scan.rejected
        .map((r) => r.reason)
        .join("; ")}. Pass resume: "restart" (hippo train --restart) to start over from step 0`,
      { file: outputDir, key: "resume" },
    );
  }
  if (o.resume === true && scan.dir) {
    const dir = scan.dir;
    for (const r of scan.rejected)
      log(`checkpoint ${r.dir} is unusable (${r.reason}); resuming from ${dir} instead`);
    const loaded = await loadCheckpoint(dir, params);
    for (const [k, v] of Object.entries(fp))
      if (loaded.stage?.[k] !== v)
        throw new HippoError(
          "INVALID_CONFIG",
          "cannot resume: the checkpoint was made with another setting",
          {
            file: join(dir, HIPPO_STATE),
            key: k,
            expected: String(v),
            got: String(loaded.stage?.[k]),
          },
        );
    state = {
      globalStep: loaded.globalStep,
      epoch: loaded.epoch,
      position: loaded.position,
      dataRngState: loaded.dataRngState,
      tokensSeen: loaded.tokensSeen,
      lossSum: loaded.lossSum,
      logHistory: loaded.logHistory,
      stage: fp,
    };
    await truncateJsonlAfterStep(metricsPath, state.globalStep);
  } else {
    await truncateJsonlAfterStep(metricsPath, 0); // a fresh run starts a fresh metrics file
  }
  rng.setState(state.dataRngState);
  let order = epochOrder(rng, train.length, shuffle);

  const runInfo = () => ({
    epoch: state.epoch + state.position / train.length,
    maxSteps: plan.totalSteps,
    loggingSteps: c.logSteps ?? 1,
    evalSteps: c.evalSteps ?? 0,
    saveSteps: c.saveSteps ?? 0,
    trainBatchSize: c.microBatchSize,
    numTrainEpochs: c.epochs,
  });
  const checkpoint = () =>
    saveCheckpoint(outputDir, params, state, {
      trainerState: trainerStateJson(state, runInfo()),
      facts: o.facts ?? {},
      ...(o.saveExtra ? { saveExtra: o.saveExtra } : {}),
      ...(c.saveTotalLimit ? { keepLast: c.saveTotalLimit } : {}),
    });
  let lastSaved = -1;
  const bar = (o.progress ?? silentProgress).start({
    name: o.name ?? "train",
    total: plan.totalSteps,
    unit: "step",
    initial: state.globalStep,
  });
  let lastLoss = Number.NaN;
  const maxGradNorm = c.maxGradNorm ?? 1.0;

  try {
    while (state.globalStep < plan.totalSteps) {
      if (o.signal?.aborted) {
        if (lastSaved !== state.globalStep) await checkpoint();
        throw new HippoError(
          "ABORTED",
          `training stopped at step ${state.globalStep}; checkpoint saved in ${outputDir}`,
        );
      }
      if (state.position >= train.length) {
        state.epoch += 1;
        state.position = 0;
        state.dataRngState = rng.getState();
        order = epochOrder(rng, train.length, shuffle);
      }
      const t0 = performance.now();
      const stepIdx = order.slice(state.position, state.position + plan.itemsPerStep);
      const micro: Item[][] = [];
      for (let i = 0; i < stepIdx.length; i += c.microBatchSize)
        micro.push(stepIdx.slice(i, i + c.microBatchSize).map((j) => train[j] as Item));
      const tokens = micro.reduce((s, items) => s + task.tokens(items), 0);

      const {
        loss,
        grads,
        stats: statSums,
      } = await accumulateGradients(task, micro, variables, stepSeed(c.seed, state.globalStep));
      const clipped = maxGradNorm > 0 ? clipByGlobalNorm(grads, maxGradNorm) : { norm: Number.NaN, grads };
      const lr = learningRateAt(schedule, state.globalStep);
      optimizer.apply(clipped.grads, lr);
      for (const t of clipped.grads) t.dispose();

      state.globalStep += 1;
      state.position += stepIdx.length;
      state.tokensSeen += tokens;
      lastLoss = loss;
      state.lossSum += loss; // in step order, so a resumed run sums exactly as an uninterrupted one
      const seconds = (performance.now() - t0) / 1000;
      const entry: LogEntry = {
        step: state.globalStep,
        epoch: state.epoch + state.position / train.length,
        loss,
        learning_rate: lr,
        ...(Number.isFinite(clipped.norm) ? { grad_norm: clipped.norm } : {}),
        tokens_per_second: tokens / seconds,
        num_tokens: state.tokensSeen,
      };
      Object.assign(entry, statSums);
      if (state.globalStep % (c.logSteps ?? 1) === 0 || state.globalStep === plan.totalSteps) {
        state.logHistory.push(entry);
        await appendJsonl(metricsPath, [entry]);
      }
      bar.tick(1, { loss, lr, "tok/s": Math.round(tokens / seconds) });

      if (
        o.evaluate &&
        c.evalSteps &&
        (state.globalStep % c.evalSteps === 0 || state.globalStep === plan.totalSteps)
      ) {
        const metrics = await o.evaluate();
        const evalEntry: LogEntry = { step: state.globalStep, epoch: entry.epoch as number, ...metrics };
        state.logHistory.push(evalEntry);
        await appendJsonl(metricsPath, [evalEntry]);
      }
      if ((c.saveSteps && state.globalStep % c.saveSteps === 0) || state.globalStep === plan.totalSteps) {
        await checkpoint();
        lastSaved = state.globalStep;
      }
    }
  } finally {
    bar.done();
    optimizer.dispose();
  }

  const trainLoss = state.globalStep > 0 ? state.lossSum / state.globalStep : Number.NaN;
  const trainerStatePath = join(outputDir, TRAINER_STATE);
  const hippoStatePath = join(outputDir, HIPPO_STATE);
  await writeJsonAtomic(trainerStatePath, trainerStateJson(state, runInfo()));
  await writeJsonAtomic(hippoStatePath, {
    ...o.facts,
    train_loss: trainLoss,
    gradient_accumulation_steps: c.gradientAccumulation,
    learning_rate: c.lr,
    lr_scheduler_type: c.schedule,
    seed: c.seed,
  });
  return {
    globalStep: state.globalStep,
    logHistory: state.logHistory,
    trainLoss,
    lastLoss,
    trainerStatePath,
    hippoStatePath,
    metricsPath,
  };
}

/**
 * Gradient accumulation: the sum over micro-batches of d(lossSum_i / U)/dθ, where U is the number of units
 * (target tokens, pairs) in all micro-batches together. Equal to the gradient of one batch holding all the
 * items. Returns the loss (sum_i lossSum_i / U), the gradients in the variables' order (caller disposes) and
 * each task statistic divided by U.
 */
export async function accumulateGradients<Item>(
  task: TrainTask<Item>,
  micro: readonly (readonly Item[])[],
  variables: readonly tf.Variable[],
  seed = 0,
): Promise<{ loss: number; grads: tf.Tensor[]; stats: Record<string, number> }> {
  const units = Math.max(
    1,
    micro.reduce((s, items) => s + task.units(items), 0),
  );
  let grads: tf.Tensor[] | undefined;
  let loss = 0;
  const stats: Record<string, number> = {};
  for (const [i, items] of micro.entries()) {
    const kept: Record<string, tf.Scalar> = {};
    const rng = createRng(seed + i);
    const { value, grads: g } = tf.variableGrads(() => {
      const out = task.lossSum(items, { training: true, rng });
      for (const [k, t] of Object.entries(out.stats ?? {})) kept[k] = tf.keep(t);
      return tf.div(out.loss, units) as tf.Scalar;
    }, variables as tf.Variable[]);
    loss += (await value.data())[0] as number;
    value.dispose();
    for (const [k, t] of Object.entries(kept)) {
      stats[k] = (stats[k] ?? 0) + ((await t.data())[0] as number) / units;
      t.dispose();
    }
    const list = variables.map((v) => g[v.name] ?? tf.zerosLike(v));
    if (!grads) grads = list;
    else {
      const prev: tf.Tensor[] = grads;
      grads = prev.map((a, i) => tf.add(a, list[i] as tf.Tensor));
      for (const t of [...prev, ...list]) t.dispose();
    }
  }
  return { loss, grads: grads ?? [], stats };
}

/** Mean loss per unit over `items` without gradients (evaluation). */
export async function evaluateLoss<Item>(
  task: TrainTask<Item>,
  items: readonly Item[],
  batchSize: number,
): Promise<number> {
  let sum = 0;
  let units = 0;
  for (let i = 0; i < items.length; i += batchSize) {
    const chunk = items.slice(i, i + batchSize);
    const t = tf.tidy(() => task.lossSum(chunk, { training: false }).loss);
    sum += (await t.data())[0] as number;
    t.dispose();
    units += task.units(chunk);
  }
  return sum / Math.max(1, units);
}
