/**
 * Prefix reuse across scoring calls, as vLLM's automatic prefix caching: when contexts share a long token
 * prefix (MMLU's five dev shots of a subject, in front of every question of that subject), the prefix runs
 * through the model once and its keys and values serve every later context that starts with it.
 *
 * Exactness. A shared prefix is cut at a multiple of PREFIX_ALIGNMENT tokens (engine.ts, item 5): the keys
 * and values of positions below such a cut are the same bits whether the model ran the whole context in one
 * forward, or the prefix alone and the rest on its cache. So a document scores to the same bits with or
 * without reuse, whichever documents came before it (tested: test/prefix-cache.test.ts). The rest of the
 * context also keeps to the per-head attention path (see `usesBatchedAttention`).
 *
 * Discovery. No caller has to declare prefixes: the cache remembers the token prefixes of recent contexts (in
 * JavaScript, no tensors); when a new context shares at least `minTokens` aligned tokens with one of them,
 * that shared part is run once (batch 1) into an entry. Entries are dropped least recently used first beyond
 * `maxBytes`, and all at once when the model's weights or adapters change.
 */
import { HippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { cloneCache, disposeCache, type KVCache } from "./cache.js";
import { PREFIX_ALIGNMENT, storageOf } from "./engine.js";
import type { CausalLM } from "./llama.js";
import { usesBatchedAttention } from "./ops.js";

export interface PrefixCacheOptions {
  /** Memory for the cached prefixes' keys and values; default 512 MiB. */
  maxBytes?: number;
  /** Shortest shared prefix worth a cache entry, in tokens; default 64. */
  minTokens?: number;
  /** How many recent contexts are remembered (token ids only) to discover shared prefixes; default 8. */
  recent?: number;
}

export interface PrefixCacheStats {
  /** Contexts that started from a cached prefix. */
  hits: number;
  /** Prefix tokens not run again thanks to those hits. */
  tokensReused: number;
  /** Shared prefixes run into new entries (one forward each). */
  entriesCreated: number;
  /** Tokens those forwards ran. */
  tokensRun: number;
  /** Bytes held now. */
  bytes: number;
}

export interface PrefixCache {
  readonly stats: PrefixCacheStats;
  /**
   * For a context whose `tokens` go into one forward followed by `following` more tokens: a cache holding the
   * keys and values of its longest cached (or newly discovered) aligned prefix, which the caller owns, extends
   * with the rest and disposes; `length` is the number of tokens it covers. Null when no prefix is shared.
   */
  take(tokens: readonly number[], following?: number): { cache: KVCache; length: number } | null;
  /** Drop every entry and the remembered contexts. */
  clear(): void;
}

interface Entry {
  tokens: number[];
  cache: KVCache;
  bytes: number;
  lastUse: number;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

function cacheBytes(cache: KVCache): number {
  let n = 0;
  for (const t of [...cache.keys, ...cache.values]) n += (t?.size ?? 0) * 4;
  return n;
}

/** Everything the keys and values of a prefix depend on: weights, adapters and the switches. */
function modelState(model: CausalLM): unknown[] {
  const out: unknown[] = [model.adaptersEnabled, model.activeAdapters.join("\u0000")];
  for (const w of model.weights.values()) out.push(storageOf(w));
  for (const name of model.activeAdapters) {
    const a = model.adapters.get(name);
    if (a === undefined) continue;
    out.push(a.scaling);
    for (const v of [...a.a.values(), ...a.b.values()]) out.push(storageOf(v as tf.Tensor));
  }
  return out;
}

export function createPrefixCache(model: CausalLM, options: PrefixCacheOptions = {}): PrefixCache {
  const maxBytes = options.maxBytes ?? 512 * 2 ** 20;
  const minTokens = options.minTokens ?? 64;
  const recentCount = options.recent ?? 8;
  for (const [key, v] of [
    ["maxBytes", maxBytes],
    ["minTokens", minTokens],
    ["recent", recentCount],
  ] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new HippoError("INVALID_ARGUMENT", "prefix cache settings must be non-negative integers", {
        key,
        got: String(v),
      });
    }
  }
  const entries: Entry[] = [];
  const recent: number[][] = [];
  const stats: PrefixCacheStats = { hits: 0, tokensReused: 0, entriesCreated: 0, tokensRun: 0, bytes: 0 };
  let state: unknown[] = modelState(model);
  let clock = 0;

  function clear(): void {
    for (const e of entries) disposeCache(e.cache);
    entries.length = 0;
    recent.length = 0;
    stats.bytes = 0;
  }

  /**
   * The usable length of a shared prefix: aligned, at most the context, and leaving a rest (plus the
   * `following` tokens) that keeps to the per-head attention path.
   */
  function usable(shared: number, total: number, following: number): number {
    let n = Math.floor(Math.min(shared, total) / PREFIX_ALIGNMENT) * PREFIX_ALIGNMENT;
    const rest = (k: number) => total - k + following;
    while (n > 0 && rest(n) > 0 && usesBatchedAttention(model.dims.groups, rest(n))) n -= PREFIX_ALIGNMENT;
    return n >= Math.max(minTokens, 1) ? n : 0;
  }

  function evict(): void {
    while (stats.bytes > maxBytes && entries.length > 0) {
      let oldest = 0;
      for (let i = 1; i < entries.length; i++) {
        if ((entries[i] as Entry).lastUse < (entries[oldest] as Entry).lastUse) oldest = i;
      }
      const [e] = entries.splice(oldest, 1);
      if (e === undefined) break;
      disposeCache(e.cache);
      stats.bytes -= e.bytes;
    }
  }

  /** Run tokens[from:length] on a copy of `base` (or from scratch) into a new entry. */
  function createEntry(tokens: readonly number[], length: number, base: Entry | null): Entry | null {
    const cache = base === null ? model.createCache(1) : cloneCache(base.cache);
    const from = base === null ? 0 : base.tokens.length;
    try {
      model.forward([tokens.slice(from, length)], { cache, logits: "none" });
    } catch (e) {
      disposeCache(cache);
      throw e;
    }
    const entry: Entry = {
      tokens: tokens.slice(0, length),
      cache,
      bytes: cacheBytes(cache),
      lastUse: ++clock,
    };
    stats.entriesCreated++;
    stats.tokensRun += length - from;
    if (entry.bytes > maxBytes) {
      disposeCache(cache);
      return null;
    }
    entries.push(entry);
    stats.bytes += entry.bytes;
    evict();
    return entries.includes(entry) ? entry : null;
  }

  function take(tokens: readonly number[], following = 0): { cache: KVCache; length: number } | null {
    if (maxBytes === 0) return null;
    const now = modelState(model);
    if (now.length !== state.length || now.some((x, i) => x !== state[i])) {
      clear();
      state = now;
    }
    let best: Entry | null = null;
    let bestLength = 0;
    for (const e of entries) {
      const n = usable(commonPrefix(e.tokens, tokens), tokens.length, following);
      if (
        n > bestLength ||
        (n === bestLength && n > 0 && best !== null && e.tokens.length < best.tokens.length)
      ) {
        best = e;
        bestLength = n;
      }
    }
    // A longer prefix shared with a recent context: run it once (on top of the best entry) into a new entry.
    let shared = 0;
    for (const r of recent)
      shared = Math.max(shared, usable(commonPrefix(r, tokens), tokens.length, following));
    if (shared >= bestLength + Math.max(minTokens, PREFIX_ALIGNMENT)) {
      const base = best !== null && best.tokens.length === bestLength ? best : null;
      const created = createEntry(tokens, shared, base);
      if (created !== null) {
        best = created;
        bestLength = shared;
      }
    }
    recent.push(tokens.slice());
    if (recent.length > recentCount) recent.shift();
    if (best === null || bestLength === 0) return null;
    best.lastUse = ++clock;
    stats.hits++;
    stats.tokensReused += bestLength;
    const copy = cloneCache(best.cache);
    if (bestLength < best.tokens.length) truncateCache(copy, bestLength);
    return { cache: copy, length: bestLength };
  }

  return { stats, take, clear };
}

/** Keep the first `length` slots of a cache (a copy of those slots). */
function truncateCache(cache: KVCache, length: number): void {
  for (let l = 0; l < cache.layers; l++) {
    const k = cache.keys[l];
    const v = cache.values[l];
    if (k === null || k === undefined || v === null || v === undefined) continue;
    cache.keys[l] = sliceKeep(k, 3, length);
    cache.values[l] = sliceKeep(v, 2, length);
    k.dispose();
    v.dispose();
  }
  cache.length = length;
  cache.valid = cache.valid.map((r) => r.slice(0, length));
  cache.segments = cache.segments.map((r) => r.slice(0, length));
}

function sliceKeep(t: tf.Tensor4D, axis: 2 | 3, length: number): tf.Tensor4D {
  const size: [number, number, number, number] = [-1, -1, -1, -1];
  size[axis] = length;
  return tf.keep(tf.slice(t, [0, 0, 0, 0], size));
}
