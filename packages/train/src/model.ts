/**
 * The little the training loop needs from a model (`TrainableLM`): a forward pass from token ids to logits that
 * is differentiable with respect to the trainable variables. `@hippocrates/model`'s CausalLM (Llama/Mistral)
 * satisfies it structurally; the tests also use a tiny two-layer MLP language model.
 */
import type { Rng } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import type { LmBatch } from "./batch.js";
import { sequenceLogProbs } from "./losses.js";

export interface ForwardOptions {
  /** [batch][seq]: 1 real token, 0 padding. */
  attentionMask?: number[][];
  /** [batch][seq] explicit positions (restarting per packed document). */
  positionIds?: number[][];
  /** [batch][seq] document index: attention stays within a segment (packed blocks). */
  segmentIds?: number[][];
  /** Enables dropout (LoRA dropout). */
  training?: boolean;
  /** RNG for the dropout masks (the loop seeds one per micro-batch so resumed runs replay them). */
  rng?: Rng;
  /** Recompute each decoder layer in the backward pass (gradient checkpointing). */
  checkpointLayers?: boolean;
}

export interface TrainableLM {
  /** Logits [batch, seq, vocab]; with `logits: "none"` and `outputHidden`, the final hidden states instead. */
  forward(
    inputIds: number[][],
    options?: ForwardOptions & { logits?: "all" | "none"; outputHidden?: boolean },
  ): { logits: tf.Tensor3D | null; hidden?: tf.Tensor3D | null };
  /**
   * Optional memory-lean head: per-token log p(target | hidden) for [rows, hidden] final hidden states, the
   * [rows, vocab] logits never whole (@hippocrates/model's Llama has it). Used instead of full logits when present.
   */
  tokenLogProbs?(hidden: tf.Tensor2D, targets: ArrayLike<number>): tf.Tensor1D;
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
  const options: ForwardOptions = { training: o.training };
  if (o.rng) options.rng = o.rng;
  if (o.checkpointLayers) options.checkpointLayers = true;
  if (batch.attentionMask) options.attentionMask = rows(batch.attentionMask, B, T);
  if (batch.segmentIds) options.segmentIds = rows(batch.segmentIds, B, T);
  if (batch.positionIds) options.positionIds = rows(batch.positionIds, B, T);
  return options;
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
