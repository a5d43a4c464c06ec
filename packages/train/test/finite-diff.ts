/** Central finite differences on a tf.Variable, for the gradient tests (any backend: no backend import). */
import * as tf from "@tensorflow/tfjs-core";

/**
 * (loss(v + eps e_j) - loss(v - eps e_j)) / (2 eps), where `base` holds v's current values; v is set back to
 * `base` afterwards.
 */
export function centralDifference(
  v: tf.Variable,
  base: Float32Array | Int32Array | Uint8Array,
  j: number,
  eps: number,
  loss: () => number,
): number {
  const probe = (delta: number) => {
    const p = base.slice();
    p[j] = (p[j] as number) + delta;
    tf.tidy(() => v.assign(tf.tensor(p, v.shape)));
    return loss();
  };
  const numeric = (probe(eps) - probe(-eps)) / (2 * eps);
  tf.tidy(() => v.assign(tf.tensor(base, v.shape)));
  return numeric;
}
