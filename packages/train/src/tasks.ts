/**
 * A task tells the loop how to turn a micro-batch into a loss. Two tasks cover the three stages:
 * `lmTask` (CPT and SFT: next-token cross-entropy over the labelled tokens) and `dpoTask` (preference pairs).
 *
 * Normalisation (gradient accumulation): a task returns the loss SUMMED over its units (target tokens for the
 * LM task, pairs for DPO) and says how many units a micro-batch has; the loop divides by the units of the whole
 * optimizer batch (all k micro-batches). So k micro-batches give exactly the gradient of one batch k times the
 * size, and the LM loss is the mean per target token over the optimizer batch (HF's `num_items_in_batch`
 * behaviour since transformers 4.46), not a mean of per-micro-batch means.
 */
import {
  HippoError,
  IGNORE_INDEX,
  type Rng,
  type TokenizedExample,
  type TokenizedPreference,
} from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { collateLm, countExampleTargets, type LmBatch, packExamples, packPreferences } from "./batch.js";
import { type DpoLossConfig, dpoLoss } from "./losses.js";
import { batchLogProbs, packedTokenLogProbs, sumByUnit, type TrainableLM } from "./model.js";

export interface TaskOutput {
  /** Loss summed over the units of the micro-batch. */
  loss: tf.Scalar;
  /** Other quantities summed over the units (the loop reports sum / units). */
  stats?: Record<string, tf.Scalar>;
}

export interface StepContext {
  /** Enables dropout. */
  training: boolean;
  /** Seeded per micro-batch by the loop (dropout masks replay exactly on resume). */
  rng?: Rng;
}

export interface TrainTask<Item> {
  /** Loss summed over the units of `items`. */
  lossSum(items: readonly Item[], context: StepContext): TaskOutput;
  /** Units of the normaliser in `items`. */
  units(items: readonly Item[]): number;
  /** Input tokens in `items` (for tokens/s). */
  tokens(items: readonly Item[]): number;
}

export interface LmTaskOptions {
  padId: number;
  /** Truncate longer examples (right). */
  maxLength?: number;
  /** Gradient checkpointing per decoder layer (less memory; the layer's linear products are replayed). */
  checkpointLayers?: boolean;
  /**
   * Padding-free micro-batches (TRL's `padding_free`, default true): examples laid end to end in rows with
   * block-diagonal attention and restarting positions, so no work goes to padding; the loss is the same. Needs
   * a model with `tokenLogProbs` (others get right-padded batches).
   */
  paddingFree?: boolean;
  /** Row length of padding-free batches; default one row for the whole micro-batch (attention stays per example). */
  rowLength?: number;
}

/** Whether a task runs padding-free batches on `model`. */
function packs(model: TrainableLM, paddingFree: boolean | undefined): boolean {
  return paddingFree !== false && model.tokenLogProbs !== undefined;
}

export function lmTask(model: TrainableLM, options: LmTaskOptions): TrainTask<TokenizedExample> {
  const packed = packs(model, options.paddingFree);
  return {
    lossSum(items, context) {
      const settings = { ...context, checkpointLayers: options.checkpointLayers ?? false };
      if (packed) {
        const batch = packExamples(items, options.padId, options);
        return { loss: tf.neg(tf.sum(packedTokenLogProbs(model, batch, settings))) as tf.Scalar };
      }
      const batch = collateLm(items, options.padId, options.maxLength);
      return { loss: tf.neg(tf.sum(batchLogProbs(model, batch, settings))) as tf.Scalar };
    },
    units: (items) =>
      items.reduce(
        (s, e) => s + countExampleTargets(options.maxLength ? truncate(e, options.maxLength) : e),
        0,
      ),
    tokens: (items) =>
      items.reduce(
        (s, e) => s + Math.min(e.inputIds.length, options.maxLength ?? Number.POSITIVE_INFINITY),
        0,
      ),
  };
}

function truncate(e: TokenizedExample, n: number): TokenizedExample {
  if (e.inputIds.length <= n) return e;
  return {
    inputIds: e.inputIds.slice(0, n),
    labels: e.labels.slice(0, n),
    segmentIds: e.segmentIds?.slice(0, n),
  };
}

// ---------------------------------------------------------------------------------------------------------
// DPO.

/** A preference pair with the reference model's log-probs (computed once before training, or cached on disk). */
export interface DpoItem extends TokenizedPreference {
  referenceChosen: number;
  referenceRejected: number;
}

/** prompt + response as one example whose labels cover the response only. */
export function responseExample(
  promptIds: readonly number[],
  responseIds: readonly number[],
): TokenizedExample {
  return {
    inputIds: [...promptIds, ...responseIds],
    labels: [...promptIds.map(() => IGNORE_INDEX), ...responseIds],
  };
}

/**
 * Sequence log-probs of the response tokens of each pair, chosen and rejected. With a model that has
 * `tokenLogProbs` (and `paddingFree` not false), each pair is one prompt followed by both responses, which
 * attend to that one copy (the prompt's forward and backward run once per pair), packed padding-free; else
 * TRL's concatenated_forward, one right-padded batch [prompt + chosen..., prompt + rejected...]. The two give
 * the same numbers. For IPO TRL averages over the response tokens; `average` does that.
 */
export function dpoLogProbs(
  model: TrainableLM,
  pairs: readonly TokenizedPreference[],
  options: {
    padId: number;
    maxLength?: number;
    average?: boolean;
    checkpointLayers?: boolean;
    paddingFree?: boolean;
    rowLength?: number;
  } & StepContext,
): { chosen: tf.Tensor1D; rejected: tf.Tensor1D } {
  const examples = [
    ...pairs.map((p) => responseExample(p.promptIds, p.chosenIds)),
    ...pairs.map((p) => responseExample(p.promptIds, p.rejectedIds)),
  ];
  let logps: tf.Tensor1D;
  if (packs(model, options.paddingFree)) {
    const batch = packPreferences(pairs, options.padId, options);
    logps = sumByUnit(packedTokenLogProbs(model, batch, options), batch.pickUnits, batch.units);
  } else {
    const batch: LmBatch = collateLm(examples, options.padId, options.maxLength);
    logps = batchLogProbs(model, batch, options);
  }
  if (options.average) {
    const counts = examples.map((e) => Math.max(1, countExampleTargets(e)));
    logps = tf.div(logps, tf.tensor1d(counts)) as tf.Tensor1D;
  }
  const n = pairs.length;
  // Array begin/size: the Slice gradient registered by @hippocrates/model expects arrays.
  return {
    chosen: tf.slice(logps, [0], [n]) as tf.Tensor1D,
    rejected: tf.slice(logps, [n], [n]) as tf.Tensor1D,
  };
}

export interface DpoTaskOptions extends DpoLossConfig {
  padId: number;
  maxLength?: number;
  checkpointLayers?: boolean;
  /** Shared-prompt, padding-free micro-batches (default true; see dpoLogProbs). */
  paddingFree?: boolean;
  /** Row length of padding-free batches; default one row for the whole micro-batch (attention stays per pair). */
  rowLength?: number;
}

export function dpoTask(policy: TrainableLM, options: DpoTaskOptions): TrainTask<DpoItem> {
  const beta = options.beta ?? 0.1;
  return {
    lossSum(items, context) {
      const { chosen, rejected } = dpoLogProbs(policy, items, {
        ...options,
        ...context,
        average: options.lossType === "ipo",
      });
      const refC = tf.tensor1d(items.map((p) => p.referenceChosen));
      const refR = tf.tensor1d(items.map((p) => p.referenceRejected));
      const out = dpoLoss(chosen, rejected, refC, refR, { ...options, beta });
      const acc = tf.cast(tf.greater(out.chosenRewards, out.rejectedRewards), "float32");
      return {
        loss: tf.sum(out.losses) as tf.Scalar,
        stats: {
          "rewards/chosen": tf.sum(out.chosenRewards),
          "rewards/rejected": tf.sum(out.rejectedRewards),
          "rewards/accuracies": tf.sum(acc),
          "rewards/margins": tf.sum(tf.sub(out.chosenRewards, out.rejectedRewards)),
          "logps/chosen": tf.sum(chosen),
          "logps/rejected": tf.sum(rejected),
        },
      };
    },
    units: (items) => items.length,
    tokens: (items) =>
      items.reduce((s, p) => s + 2 * p.promptIds.length + p.chosenIds.length + p.rejectedIds.length, 0),
  };
}

/**
 * Reference log-probs for every pair, from `reference` (the policy with its new adapter disabled), without
 * gradients, in batches. Returns DpoItems ready for the loop.
 */
export async function computeReferenceLogProbs(
  reference: TrainableLM,
  pairs: readonly TokenizedPreference[],
  options: { padId: number; maxLength?: number; batchSize: number; average?: boolean },
): Promise<DpoItem[]> {
  if (!(options.batchSize > 0))
    throw new HippoError("INVALID_ARGUMENT", "batchSize must be positive", { key: "batchSize" });
  const out: DpoItem[] = [];
  for (let i = 0; i < pairs.length; i += options.batchSize) {
    const chunk = pairs.slice(i, i + options.batchSize);
    const [c, r] = tf.tidy(() => {
      const lp = dpoLogProbs(reference, chunk, { ...options, training: false });
      return [lp.chosen, lp.rejected];
    });
    const cv = await c.data();
    const rv = await r.data();
    c.dispose();
    r.dispose();
    chunk.forEach((p, j) => {
      out.push({ ...p, referenceChosen: cv[j] as number, referenceRejected: rv[j] as number });
    });
  }
  return out;
}
