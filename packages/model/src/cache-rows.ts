/**
 * Row selection for KV caches by slice + concat along the batch axis. Same result as cache.ts's
 * `selectCacheRows` (which gathers), but on the wasm backend `gather`/`tile` of a cache tensor cost 50-190 ms
 * per MB on this machine while a batch-axis concat of the same size costs 1-10 ms (the rows are contiguous
 * blocks): with 30 layers x (K, V) per scoring batch the difference is seconds per question.
 */
import { HippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { checkCacheRows, type KVCache, mapCache } from "./cache.js";

/** A new cache whose row i is row `rows[i]` of `cache` (rows may repeat); `cache` is left as is. */
export function repeatCacheRows(cache: KVCache, rows: number[]): KVCache {
  if (cache.disposed) throw new HippoError("INVALID_ARGUMENT", "the cache was disposed");
  if (rows.length === 0) throw new HippoError("INVALID_ARGUMENT", "no cache rows selected");
  checkCacheRows(cache, rows);
  return mapCache(cache, rows, (t) =>
    tf.tidy(() => {
      const pieces = new Map<number, tf.Tensor4D>();
      const row = (r: number): tf.Tensor4D => {
        if (cache.batch === 1) return t;
        let p = pieces.get(r);
        if (p === undefined) {
          p = tf.slice(t, [r, 0, 0, 0], [1, -1, -1, -1]);
          pieces.set(r, p);
        }
        return p;
      };
      if (rows.length === 1) return tf.clone(row(rows[0] as number));
      return tf.concat(rows.map(row), 0);
    }),
  );
}
