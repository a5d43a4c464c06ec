/**
 * The little the training loop needs from a model: a forward pass from token ids to logits that is
 * differentiable with respect to the trainable variables. `@hippocrates/model`'s Llama/Mistral satisfy it; the
 * tests also use a tiny two-layer MLP language model.
 */
import * as tf from "@tensorflow/tfjs-core";
import type { LmBatch } from "./batch.js";

export interface ForwardOptions {
  /** [batch, seq] int32; tokens attend only within their segment (packed documents). */
  segmentIds?: tf.Tensor2D;
  /** [batch, seq] int32; 1 real token, 0 padding. */
  attentionMask?: tf.Tensor2D;
  /** [batch, seq] int32; defaults to 0..seq-1. */
  positionIds?: tf.Tensor2D;
  /** Enables dropout (LoRA dropout). */
  training?: boolean;
}

export interface CausalLM {
  /** Logits [batch, seq, vocab]. */
  forward(inputIds: tf.Tensor2D, options?: ForwardOptions): tf.Tensor3D;
}

/** Run `model` on a collated batch (call inside a tidy or a gradient tape: the inputs it creates are not kept). */
export function forwardBatch(model: CausalLM, batch: LmBatch, training: boolean): tf.Tensor3D {
  const shape: [number, number] = [batch.batchSize, batch.seqLen];
  const ids = tf.tensor2d(batch.inputIds, shape, "int32");
  const options: ForwardOptions = { training };
  if (batch.attentionMask) options.attentionMask = tf.tensor2d(batch.attentionMask, shape, "int32");
  if (batch.segmentIds) options.segmentIds = tf.tensor2d(batch.segmentIds, shape, "int32");
  if (batch.positionIds) options.positionIds = tf.tensor2d(batch.positionIds, shape, "int32");
  return model.forward(ids, options);
}
