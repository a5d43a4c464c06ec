/**
 * The little the training loop needs from a model: a forward pass from token ids to logits that is
 * differentiable with respect to the trainable variables. `@hippocrates/model`'s CausalLM (Llama/Mistral)
 * satisfies it structurally; the tests also use a tiny two-layer MLP language model.
 */
import type { Rng } from "@hippocrates/core";
import type * as tf from "@tensorflow/tfjs-core";
import type { LmBatch } from "./batch.js";

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

export interface CausalLM {
  /** Logits [batch, seq, vocab]. */
  forward(inputIds: number[][], options?: ForwardOptions): { logits: tf.Tensor3D | null };
}

function rows(a: Int32Array, B: number, T: number): number[][] {
  return Array.from({ length: B }, (_, b) => Array.from(a.subarray(b * T, (b + 1) * T)));
}

export interface ForwardBatchOptions {
  training: boolean;
  rng?: Rng;
  checkpointLayers?: boolean;
}

/** Run `model` on a collated batch; returns logits [batch, seq, vocab]. */
export function forwardBatch(model: CausalLM, batch: LmBatch, o: ForwardBatchOptions): tf.Tensor3D {
  const { batchSize: B, seqLen: T } = batch;
  const options: ForwardOptions = { training: o.training };
  if (o.rng) options.rng = o.rng;
  if (o.checkpointLayers) options.checkpointLayers = true;
  if (batch.attentionMask) options.attentionMask = rows(batch.attentionMask, B, T);
  if (batch.segmentIds) options.segmentIds = rows(batch.segmentIds, B, T);
  if (batch.positionIds) options.positionIds = rows(batch.positionIds, B, T);
  const { logits } = model.forward(rows(batch.inputIds, B, T), options);
  if (!logits) throw new Error("model returned no logits");
  return logits;
}
