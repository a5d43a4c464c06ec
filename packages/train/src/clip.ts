/** Global-norm gradient clipping as `torch.nn.utils.clip_grad_norm_` (HF `max_grad_norm`, default 1.0). */
import * as tf from "@tensorflow/tfjs-core";

/** sqrt of the sum of squares of every gradient element. */
export function globalNorm(grads: readonly tf.Tensor[]): number {
  if (grads.length === 0) return 0;
  const sq = tf.tidy(() => tf.addN(grads.map((g) => tf.sum(tf.square(g)))));
  const value = sq.dataSync()[0] as number;
  sq.dispose();
  return Math.sqrt(value);
}

/**
 * Scale the gradients so that their global norm is at most `maxNorm` (PyTorch: coefficient
 * maxNorm / (norm + 1e-6), clamped to 1). Returns the norm before clipping and new gradient tensors; the
 * inputs are disposed when they were replaced.
 */
export function clipByGlobalNorm(grads: tf.Tensor[], maxNorm: number): { norm: number; grads: tf.Tensor[] } {
  const norm = globalNorm(grads);
  const coef = maxNorm / (norm + 1e-6);
  if (!(maxNorm > 0) || coef >= 1) return { norm, grads };
  const clipped = grads.map((g) => {
    const c = tf.mul(g, coef);
    g.dispose();
    return c;
  });
  return { norm, grads: clipped };
}
