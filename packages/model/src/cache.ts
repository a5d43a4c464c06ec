/**
 * Key/value cache for incremental decoding. One entry per layer, in the layouts the attention kernel reads:
 * keys transposed [B, Hkv, d, S] (so scores are a non-transposed product) and values [B, Hkv, S, d], keys
 * after RoPE. Alongside: which cached slots are real tokens (padding is cached but never attended to) and the
 * next position id of each row (left-padded rows count only their real tokens, as HF generate does).
 *
 * A forward with a cache appends to it in place (the old tensors are disposed); the tensors are `tf.keep`-ed
 * so a cache survives `tf.tidy`. Dispose it with `disposeCache`.
 */
import { HippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";

export interface KVCache {
  readonly batch: number;
  readonly layers: number;
  /** Cached slots per row (real tokens and padding). */
  length: number;
  /** Per layer [B, Hkv, d, length]; null before the first forward. */
  keys: (tf.Tensor4D | null)[];
  /** Per layer [B, Hkv, length, d]. */
  values: (tf.Tensor4D | null)[];
  /** Per row: 1 where the slot holds a real token, 0 for padding. */
  valid: Uint8Array[];
  /** Per row: segment id of each slot (packed sequences). */
  segments: Int32Array[];
  /** Per row: the position id the next real token gets. */
  nextPosition: number[];
  disposed: boolean;
}

export function createCache(batch: number, layers: number): KVCache {
  if (!Number.isInteger(batch) || batch <= 0) {
    throw new HippoError("INVALID_ARGUMENT", "cache batch must be a positive integer", {
      got: String(batch),
    });
  }
  return {
    batch,
    layers,
    length: 0,
    keys: new Array<tf.Tensor4D | null>(layers).fill(null),
    values: new Array<tf.Tensor4D | null>(layers).fill(null),
    valid: Array.from({ length: batch }, () => new Uint8Array(0)),
    segments: Array.from({ length: batch }, () => new Int32Array(0)),
    nextPosition: new Array<number>(batch).fill(0),
    disposed: false,
  };
}

export function disposeCache(cache: KVCache): void {
  for (const t of cache.keys) t?.dispose();
  for (const t of cache.values) t?.dispose();
  cache.keys.fill(null);
  cache.values.fill(null);
  cache.disposed = true;
}

/** Throws unless every entry of `rows` is a row index of `cache`. */
export function checkCacheRows(cache: KVCache, rows: readonly number[]): void {
  for (const r of rows) {
    if (!Number.isInteger(r) || r < 0 || r >= cache.batch) {
      throw new HippoError("INVALID_ARGUMENT", "cache row out of range", {
        expected: `0..${cache.batch - 1}`,
        got: String(r),
      });
    }
  }
}

/**
 * A new cache of `rows.length` rows, row i taken from row `rows[i]` of `cache`: `f` maps each layer's K and V
 * tensor (kept), the per-row bookkeeping is copied. `cache` is left as is.
 */
export function mapCache(cache: KVCache, rows: number[], f: (t: tf.Tensor4D) => tf.Tensor4D): KVCache {
  if (cache.disposed) throw new HippoError("INVALID_ARGUMENT", "the cache was disposed");
  const out = createCache(rows.length, cache.layers);
  out.length = cache.length;
  out.keys = cache.keys.map((t) => (t === null ? null : tf.keep(f(t))));
  out.values = cache.values.map((t) => (t === null ? null : tf.keep(f(t))));
  out.valid = rows.map((r) => (cache.valid[r] as Uint8Array).slice());
  out.segments = rows.map((r) => (cache.segments[r] as Int32Array).slice());
  out.nextPosition = rows.map((r) => cache.nextPosition[r] as number);
  return out;
}

/** An independent copy (tensors share storage until either side appends; tfjs tensors are immutable). */
export function cloneCache(cache: KVCache): KVCache {
  const rows = Array.from({ length: cache.batch }, (_, i) => i);
  return mapCache(cache, rows, (t) => tf.clone(t));
}

/**
 * A new cache whose row i is row `rows[i]` of `cache` (rows may repeat): e.g. one context's cache reused by
 * several continuations. The source cache is left as is.
 */
export function selectCacheRows(cache: KVCache, rows: number[]): KVCache {
  checkCacheRows(cache, rows);
  return mapCache(cache, rows, (t) => tf.tidy(() => tf.gather(t, tf.tensor1d(rows, "int32"))));
}

/** Repeat every row of a cache n times (row-major: row 0 n times, then row 1, ...). */
export function expandCache(cache: KVCache, n: number): KVCache {
  if (!Number.isInteger(n) || n <= 0) {
    throw new HippoError("INVALID_ARGUMENT", "expandCache needs a positive integer count", {
      got: String(n),
    });
  }
  const rows: number[] = [];
  for (let r = 0; r < cache.batch; r++) for (let i = 0; i < n; i++) rows.push(r);
  return selectCacheRows(cache, rows);
}
