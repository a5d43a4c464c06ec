/**
 * The little the training loop needs from a model (`TrainableLM`): a forward pass from token ids to logits that
 * is differentiable with respect to the trainable variables. `@hippocrates/model`'s CausalLM (Llama/Mistral)
 * satisfies it structurally; the tests also use a tiny two-layer MLP language model.
 */
import type { Rng } from "@hippocrates/core";
import type { ForwardOptions as ModelForwardOptions } from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";
import type { LmBatch, PackedBatch } from "./batch.js";
import { sequenceLogProbs } from "./losses.js";

/**
 * The forward options the loop and tasks pass: padding, explicit positions, packed segments (with parents for
 * shared prompts), training mode with its dropout RNG, gradient checkpointing; as @hippocrates/model's
 * ForwardOptions documents them.
 */
export type ForwardOptions = Pick<
  ModelForwardOptions,
  | "attentionMask"
  | "positionIds"
  | "segmentIds"
  | "parentSegmentIds"
  | "training"
  | "rng"
  | "checkpointLayers"
  | "hiddenRows"
>;

export interface TrainableLM {
  /** Logits [batch, seq, vocab]; with `logits: "none"` and `outputHidden`, the final hidden states instead. */
  forward(
    inputIds: number[][],
    options?: ForwardOptions & { logits?: "all" | "none"; outputHidden?: boolean },
  ): { logits: tf.Tensor3D | null; hidden?: tf.Tensor3D | null };
  /**
   * Optional memory-lean head: per-token log p(target | hidden) for [rows, hidden] final hidden states, the
   * [rows, vocab] logits never whole, only scored rows reaching the head (@hippocrates/model's Llama has it).
   * With `rows`, hidden row rows[i] predicts targets[i]. A model that has it also takes the packed-batch
   * options above (segments with parents, positions) and `hiddenRows` (only the scored slots leave the last
   * layer, `hidden` then [1, rows, hidden]): tasks then use padding-free batches.
   */
  tokenLogProbs?(hidden: tf.Tensor2D, targets: ArrayLike<number>, rows?: ArrayLike<number>): tf.Tensor1D;
}

function rows(a: Int32Array, B: number, T: number): number[][] {
  return Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T)));
}

export interface ForwardBatchOptions {
  training: boolean;
  rng?: Rng;
  checkpointLayers?: boolean;
}

function forwardOptions(batch: LmBatch, o: ForwardBatchOptions): ForwardOptions {
  const { batchSize: B, seqLen: T } = batch;
  const rowsOf = (a: Int32Array | undefined) => (a === undefined ? undefined : rows(a, B, T));
  return {
    training: o.training,
    rng: o.rng,
    checkpointLayers: o.checkpointLayers,
    attentionMask: rowsOf(batch.attentionMask),
    segmentIds: rowsOf(batch.segmentIds),
    positionIds: rowsOf(batch.positionIds),
  };
}

/** Run `model` on a collated batch; returns logits [batch, seq, vocab]. */
export function forwardBatch(model: TrainableLM, batch: LmBatch, o: ForwardBatchOptions): tf.Tensor3D {
  const { batchSize: B, seqLen: T } = batch;
  const { logits } = model.forward(rows(batch.inputIds, B, T), forwardOptions(batch, o));
  if (!logits) throw new Error("model returned no logits");
  return logits;
}

/**
 * Summed log-probability of each row's targets (`batch.targets`, IGNORE_INDEX skipped): [batch]. Through the
 * model's `tokenLogProbs` when it has one (no [tokens, vocab] logits on the tape, and a frozen head's gradient
 * computed while its logits exist), else log-softmax of the full logits.
 */
export function batchLogProbs(model: TrainableLM, batch: LmBatch, o: ForwardBatchOptions): tf.Tensor1D {
  const { batchSize: B, seqLen: T } = batch;
  if (model.tokenLogProbs === undefined)
    return sequenceLogProbs(forwardBatch(model, batch, o), batch.targets);
  const { hidden } = model.forward(rows(batch.inputIds, B, T), {
    ...forwardOptions(batch, o),
    logits: "none",
    outputHidden: true,
  });
  if (!hidden) throw new Error("model returned no hidden states");
  const E = hidden.shape[2];
  const perToken = model.tokenLogProbs(tf.reshape(hidden, [B * T, E]), batch.targets);
  return tf.sum(tf.reshape(perToken, [B, T]), 1);
}

/**
 * Log-probabilities of the scored tokens of a padding-free batch (`packExamples`, `packPreferences`), in the
 * batch's `picks` order: [picks]. Only the scored rows go through the lm_head.
 */
export function packedTokenLogProbs(
  model: TrainableLM,
  batch: PackedBatch,
  o: ForwardBatchOptions,
): tf.Tensor1D {
  if (model.tokenLogProbs === undefined)
    throw new Error("padding-free batches need a model with tokenLogProbs");
  const { batchSize: B, seqLen: T } = batch;
  // Only the scored slots leave the last layer; the head reads them by their index among those slots.
  const keep = [...new Set(batch.picks)].sort((x, y) => x - y);
  const at = new Map(keep.map((slot, i) => [slot, i]));
  const { hidden } = model.forward(rows(batch.inputIds, B, T), {
    training: o.training,
    rng: o.rng,
    checkpointLayers: o.checkpointLayers,
    attentionMask: batch.attentionMask ? rows(batch.attentionMask, B, T) : undefined,
    segmentIds: rows(batch.segmentIds, B, T),
    parentSegmentIds: batch.parentSegmentIds ? rows(batch.parentSegmentIds, B, T) : undefined,
    positionIds: rows(batch.positionIds, B, T),
    logits: "none",
    outputHidden: true,
    // (A batch with nothing scored still runs, whole: tokenLogProbs then returns no entries.)
    hiddenRows: keep.length > 0 ? keep : undefined,
  });
  if (!hidden) throw new Error("model returned no hidden states");
  const E = hidden.shape[2];
  if (keep.length === 0)
    return model.tokenLogProbs(tf.reshape(hidden, [B * T, E]), batch.pickTargets, batch.picks);
  const picks = Int32Array.from(batch.picks, (slot) => at.get(slot) as number);
  return model.tokenLogProbs(tf.reshape(hidden, [keep.length, E]), batch.pickTargets, picks);
}

/** Sums of `values` by unit: out[u] = sum of values[i] with unitOf[i] = u; [units], differentiable. */
export function sumByUnit(values: tf.Tensor1D, unitOf: Int32Array, units: number): tf.Tensor1D {
  const n = unitOf.length;
  const assign = new Float32Array(units * n);
  for (let i = 0; i < n; i++) assign[(unitOf[i] as number) * n + i] = 1;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const v = args[0] as tf.Tensor1D;
    return {
      value: tf.reshape(tf.matMul(tf.tensor2d(assign, [units, n]), tf.reshape(v, [n, 1])), [units]),
      gradFunc: (dy: tf.Tensor) => tf.gather(dy, tf.tensor1d(unitOf, "int32")),
    };
  });
  return f(values) as tf.Tensor1D;
}
