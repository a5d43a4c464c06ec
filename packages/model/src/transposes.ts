/**
 * Cached transposes of frozen weights. The gradients of frozen linear layers need W^T (dx = dy W^T) and a tied
 * head needs E^T in its forward; on wasm a product with a fresh transpose costs ~2x one with a persistent
 * operand (the transpose, plus XNNPACK packing the new operand on each call: 47 vs 26 ms for
 * [512, 1536] x [1536, 576]). Each copy is valid while its weight holds the same storage: an `assign`
 * (merging an adapter, loading weights) gives the variable new storage and the stale copy is replaced.
 * Budgeted copies (linear weights, which double the weights' memory) stop at `budgetBytes()`; unbudgeted ones
 * (the tied head's E^T, needed by every forward) are always kept.
 */
import * as tf from "@tensorflow/tfjs-core";
import { storageOf } from "./engine.js";

export interface TransposeCache {
  /** W^T of the frozen weight `name`, or null when it is trainable, unknown, or over the budget. */
  get(name: string, budgeted?: boolean): tf.Tensor2D | null;
  /** Drop every cached copy (e.g. when the weights become trainable). */
  clear(): void;
}

export function createTransposeCache(
  weights: Map<string, tf.Variable>,
  budgetBytes: () => number,
): TransposeCache {
  const copies = new Map<string, { storage: object; t: tf.Tensor2D }>();
  let bytes = 0;

  function drop(name: string): void {
    const hit = copies.get(name);
    if (hit === undefined) return;
    hit.t.dispose();
    bytes -= hit.t.size * 4;
    copies.delete(name);
  }

  return {
    get(name, budgeted = true) {
      const w = weights.get(name);
      if (w === undefined || w.trainable || w.rank !== 2) return null;
      const hit = copies.get(name);
      if (hit !== undefined && hit.storage === storageOf(w)) return hit.t;
      if (hit !== undefined) drop(name);
      if (budgeted && bytes + w.size * 4 > budgetBytes()) return null;
      // kept: it is created inside whatever scope first asks for it
      const t = tf.keep(tf.transpose(w as tf.Variable<tf.Rank.R2>));
      copies.set(name, { storage: storageOf(w), t });
      bytes += w.size * 4;
      return t;
    },
    clear() {
      for (const name of [...copies.keys()]) drop(name);
    },
  };
}
