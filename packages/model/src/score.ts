/**
 * Log-likelihood scoring with lm-evaluation-harness semantics (`_loglikelihood_tokens`): for each (context,
 * continuation) the model reads `inp = (ctx + cont)[-(maxLength + 1):][:-1]` and the last `len(cont)` positions
 * of its output predict the continuation. The result is the summed log-probability of the continuation tokens
 * and whether every one of them is the argmax at its position (`isGreedy`). An empty context is replaced by
 * the EOT token (the EOS id), as the harness does.
 *
 * Context sharing. `inp` splits into a prefix (`inp` minus its last `len(cont)` tokens: the context without its
 * last token) and a suffix (the context's last token + the continuation minus its last token), whose outputs
 * are the scored ones. Requests whose prefixes are identical (the options of one multiple-choice question) run
 * the prefix once into a KV cache; the cache is repeated once per option and all suffixes run as one batch on
 * it. Truncated requests keep working: the prefix is taken from the truncated `inp`, so they share only with
 * requests truncated to the same tokens. The naive path (every request a full forward, as the harness does)
 * gives the same numbers up to float32 rounding; both paths are tested against each other.
 *
 * Only the scored positions go through lm_head (the forward returns hidden states; `lmHead` runs on the
 * gathered rows), which saves a [tokens, vocab] product per forward.
 *
 * Requests run longest first (the harness's order: bounded memory, little padding), in batches of at most
 * `batchSize` rows, and results come back in request order.
 */
import {
  HippoError,
  type LogLikelihoodRequest,
  type LogLikelihoodResult,
  type RunOptions,
  type ScoringModel,
  silentProgress,
} from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { disposeCache, type KVCache } from "./cache.js";
import { repeatCacheRows } from "./cache-rows.js";
import type { CausalLM } from "./llama.js";
import { logSoftmaxRows, softmaxAndLogSumExp } from "./ops.js";
import { createPrefixCache, type PrefixCache, type PrefixCacheOptions } from "./prefix-cache.js";

export interface LogLikelihoodOptions extends RunOptions {
  /** Longest input the model reads; default the config's `max_position_embeddings`. */
  maxLength?: number;
  /** Run a shared context once per group of requests (default true). */
  shareContext?: boolean;
  /** One full forward per request, unbatched, as lm-evaluation-harness does (for comparisons). */
  naive?: boolean;
  /** Rows (continuations) per forward; default 8. */
  batchSize?: number;
  /** Stands in for an empty context; default the config's (first) EOS id. */
  eotTokenId?: number;
  /**
   * Reuse keys and values of prefixes shared across contexts and calls (few-shot examples), see
   * prefix-cache.ts; results keep every bit. `asScoringModel` gives each scoring model one.
   */
  prefixCache?: PrefixCache;
  /** Filled with counts of the work done (for benchmarks and tests). */
  stats?: ScoreStats;
}

export interface ScoreStats {
  /** Model forward calls (prefix and suffix runs). */
  forwards: number;
  /** Token slots run through the model, padding included. */
  tokens: number;
  /** Distinct shared prefixes run. */
  prefixes: number;
  /** Context tokens not run because their keys and values came from the prefix cache. */
  reusedTokens?: number;
}

interface Row {
  index: number;
  /** Tokens whose outputs are scored start at `suffix[scoreFrom]`. */
  suffix: number[];
  scoreFrom: number;
  targets: number[];
}

interface Group {
  prefix: number[];
  rows: Row[];
  /** Prefix + longest suffix: the sort key. */
  length: number;
}

function firstEos(model: CausalLM): number | undefined {
  const e = model.config.eos_token_id;
  if (typeof e === "number") return e;
  if (Array.isArray(e) && typeof e[0] === "number") return e[0];
  return undefined;
}

function checkIds(ids: unknown, vocab: number, row: number, key: string): number[] {
  if (!Array.isArray(ids)) {
    throw new HippoError("INVALID_ARGUMENT", "token ids must be an array", { row, key, got: typeof ids });
  }
  for (let j = 0; j < ids.length; j++) {
    const id = ids[j];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new HippoError("INVALID_ARGUMENT", "token id out of range", {
        row,
        key: `${key}[${j}]`,
        expected: `integer in [0, ${vocab})`,
        got: String(id),
      });
    }
  }
  return ids as number[];
}

/** Split requests into rows and group the rows by their (truncated) prefix. */
function planGroups(
  model: CausalLM,
  requests: LogLikelihoodRequest[],
  maxLength: number,
  share: boolean,
  eot: number | undefined,
): Group[] {
  const { vocab } = model.dims;
  const groups = new Map<string, Group>();
  const singles: Group[] = [];
  requests.forEach((req, index) => {
    if (req === null || typeof req !== "object") {
      throw new HippoError("INVALID_ARGUMENT", "a request must be {context, continuation}", { row: index });
    }
    let ctx = checkIds(req.context, vocab, index, "context");
    const cont = checkIds(req.continuation, vocab, index, "continuation");
    if (cont.length === 0) {
      throw new HippoError("INVALID_ARGUMENT", "empty continuation", { row: index, key: "continuation" });
    }
    if (cont.length > maxLength) {
      throw new HippoError("INVALID_ARGUMENT", "the continuation is longer than the model's maximum length", {
        row: index,
        key: "continuation",
        expected: `at most ${maxLength} tokens`,
        got: String(cont.length),
      });
    }
    if (ctx.length === 0) {
      if (eot === undefined) {
        throw new HippoError("INVALID_CONFIG", "an empty context needs an EOS/EOT id to stand for it", {
          row: index,
          key: "eos_token_id",
        });
      }
      ctx = [eot];
    }
    const whole = [...ctx, ...cont];
    const inp = whole.slice(Math.max(0, whole.length - (maxLength + 1)), whole.length - 1);
    const split = inp.length - cont.length;
    const prefix = share ? inp.slice(0, split) : [];
    const row: Row = share
      ? { index, suffix: inp.slice(split), scoreFrom: 0, targets: cont }
      : { index, suffix: inp, scoreFrom: split, targets: cont };
    if (prefix.length === 0) {
      singles.push({ prefix, rows: [row], length: row.suffix.length });
      return;
    }
    const key = prefix.join(",");
    let g = groups.get(key);
    if (g === undefined) {
      g = { prefix, rows: [], length: 0 };
      groups.set(key, g);
    }
    g.rows.push(row);
    g.length = Math.max(g.length, prefix.length + row.suffix.length);
  });
  const all = [...groups.values(), ...singles];
  // Longest first; ties keep the requests' order (Array.prototype.sort is stable).
  all.sort((a, b) => b.length - a.length);
  return all;
}

function padRight(rows: number[][], width: number, pad: number): { ids: number[][]; mask: number[][] } {
  return {
    ids: rows.map((r) => [...r, ...new Array<number>(width - r.length).fill(pad)]),
    mask: rows.map((r) => Array.from({ length: width }, (_, t) => (t < r.length ? 1 : 0))),
  };
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function logLikelihood(
  model: CausalLM,
  requests: LogLikelihoodRequest[],
  options: LogLikelihoodOptions = {},
): Promise<LogLikelihoodResult[]> {
  if (!Array.isArray(requests)) throw new HippoError("INVALID_ARGUMENT", "requests must be an array");
  const maxLength = options.maxLength ?? model.config.max_position_embeddings;
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new HippoError("INVALID_ARGUMENT", "maxLength must be a positive integer", {
      got: String(maxLength),
    });
  }
  const naive = options.naive === true;
  const share = !naive && options.shareContext !== false;
  const batchSize = naive ? 1 : (options.batchSize ?? 8);
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new HippoError("INVALID_ARGUMENT", "batchSize must be a positive integer", {
      got: String(batchSize),
    });
  }
  const eot = options.eotTokenId ?? firstEos(model);
  const groups = planGroups(model, requests, maxLength, share, eot);
  const stats = options.stats;
  const pad = eot ?? 0; // padded slots are masked; any valid id does
  const results = new Array<LogLikelihoodResult>(requests.length);
  const progress = (options.progress ?? silentProgress).start({
    name: "loglikelihood",
    total: requests.length,
    unit: "req",
  });
  const ran = new Set<Group>();
  const check = () => {
    if (options.signal?.aborted) {
      throw new HippoError("ABORTED", "scoring was aborted", { cause: options.signal.reason });
    }
  };

  // Prefix-cache hits, looked up once per group, in the order the groups run.
  const prefixCache = share ? options.prefixCache : undefined;
  const hits = new Map<Group, { cache: KVCache; length: number } | null>();
  const hitOf = (group: Group) => {
    if (prefixCache === undefined || group.prefix.length === 0) return null;
    if (!hits.has(group)) hits.set(group, prefixCache.take(group.prefix));
    return hits.get(group) ?? null;
  };

  try {
    let g = 0;
    while (g < groups.length) {
      const first = groups[g++] as Group;
      const hit = hitOf(first);
      if (hit !== null) {
        // A context that starts with a cached prefix runs alone, from the prefix's keys and values.
        check();
        await scoreBatch([first], hit);
        await yieldToLoop();
        continue;
      }
      // Pack whole groups while their rows fit the batch (a larger group goes alone, in row chunks).
      const batch: Group[] = [first];
      let rows = first.rows.length;
      // ...and while the prefix padding stays small: padding costs full tokens, a bigger batch gains little
      // once prefixes are long.
      let minP = first.prefix.length;
      let maxP = minP;
      const fits = (next: Group) => {
        const lo = Math.min(minP, next.prefix.length);
        const hi = Math.max(maxP, next.prefix.length);
        return (
          rows + next.rows.length <= batchSize && hi - lo <= Math.max(16, 0.1 * hi) && hitOf(next) === null
        );
      };
      while (g < groups.length && fits(groups[g] as Group)) {
        const next = groups[g++] as Group;
        rows += next.rows.length;
        minP = Math.min(minP, next.prefix.length);
        maxP = Math.max(maxP, next.prefix.length);
        batch.push(next);
      }
      check();
      await scoreBatch(batch, null);
      await yieldToLoop();
    }
  } finally {
    // Hits looked up but not run (an abort or an error): their caches are ours to free.
    for (const [group, hit] of hits) if (hit !== null && !ran.has(group)) disposeCache(hit.cache);
    progress.done();
  }
  return results;

  async function scoreBatch(batch: Group[], hit: { cache: KVCache; length: number } | null): Promise<void> {
    for (const b of batch) ran.add(b);
    const P = Math.max(...batch.map((b) => b.prefix.length));
    let prefixCache: KVCache | null = hit?.cache ?? null;
    try {
      if (hit !== null) {
        // The context's first hit.length tokens are cached; run the rest on them (one group, batch 1).
        const rest = (batch[0] as Group).prefix.slice(hit.length);
        if (rest.length > 0) model.forward([rest], { cache: hit.cache, logits: "none" });
        if (stats) {
          if (rest.length > 0) stats.forwards++;
          stats.tokens += rest.length;
          stats.prefixes++;
          stats.reusedTokens = (stats.reusedTokens ?? 0) + hit.length;
        }
      } else if (P > 0) {
        prefixCache = model.createCache(batch.length);
        const { ids, mask } = padRight(
          batch.map((b) => b.prefix),
          P,
          pad,
        );
        model.forward(ids, { cache: prefixCache, attentionMask: mask, logits: "none" });
        if (stats) {
          stats.forwards++;
          stats.tokens += batch.length * P;
          stats.prefixes += batch.filter((b) => b.prefix.length > 0).length;
        }
      }
      const packedLength = Math.max(...batch.map((b) => b.rows.reduce((n, r) => n + r.suffix.length, 0)));
      const window = model.dims.slidingWindow;
      if (prefixCache !== null && (window === null || P + packedLength <= window)) {
        scorePacked(batch, prefixCache, packedLength);
        progress.tick(batch.reduce((n, b) => n + b.rows.length, 0));
        return;
      }
      const rows = batch.flatMap((b, gi) => b.rows.map((row) => ({ gi, row })));
      for (let s = 0; s < rows.length; s += batchSize) {
        if (s > 0) check();
        const chunk = rows.slice(s, s + batchSize);
        const cache =
          prefixCache === null
            ? undefined
            : repeatCacheRows(
                prefixCache,
                chunk.map((c) => c.gi),
              );
        try {
          scoreRows(
            chunk.map((c) => c.row),
            cache,
          );
        } finally {
          if (cache !== undefined) disposeCache(cache);
        }
        progress.tick(chunk.length);
      }
    } finally {
      if (prefixCache !== null) disposeCache(prefixCache);
    }
  }

  /**
   * All continuations of a context in one row, back to back: each is its own segment that sees the cached
   * context (`prefixVisible`) and itself, never the other continuations, with positions continuing the
   * context's. One row per context instead of one per continuation: no copies of the context's cache, and
   * the continuations' tokens go through the layers as one short sequence.
   */
  function scorePacked(batch: Group[], cache: KVCache, S: number): void {
    const ids: number[][] = [];
    const mask: number[][] = [];
    const segmentIds: number[][] = [];
    const positionIds: number[][] = [];
    const picks: number[] = [];
    const targets: number[] = [];
    const order: Row[] = [];
    batch.forEach((g, b) => {
      const rowIds: number[] = [];
      const rowSeg: number[] = [];
      const rowPos: number[] = [];
      g.rows.forEach((r, k) => {
        const offset = rowIds.length;
        r.suffix.forEach((t, j) => {
          rowIds.push(t);
          rowSeg.push(k + 1);
          rowPos.push(g.prefix.length + j);
        });
        r.targets.forEach((t, j) => {
          picks.push(b * S + offset + r.scoreFrom + j);
          targets.push(t);
        });
        order.push(r);
      });
      const rowMask = rowIds.map(() => 1);
      while (rowIds.length < S) {
        rowIds.push(pad);
        rowSeg.push(0);
        rowPos.push(0);
        rowMask.push(0);
      }
      ids.push(rowIds);
      mask.push(rowMask);
      segmentIds.push(rowSeg);
      positionIds.push(rowPos);
    });
    const out = model.forward(ids, {
      cache,
      prefixVisible: true,
      segmentIds,
      positionIds,
      attentionMask: mask,
      logits: "none",
      outputHidden: true,
    });
    if (stats) {
      stats.forwards++;
      stats.tokens += batch.length * S;
    }
    collect(out.hidden as tf.Tensor3D, batch.length * S, picks, targets, order);
  }

  /** One forward of the rows' suffixes (on the prefix cache when given); fills their results. */
  function scoreRows(rows: Row[], cache: KVCache | undefined): void {
    const S = Math.max(...rows.map((r) => r.suffix.length));
    const { ids, mask } = padRight(
      rows.map((r) => r.suffix),
      S,
      pad,
    );
    const picks: number[] = [];
    const targets: number[] = [];
    rows.forEach((r, k) => {
      r.targets.forEach((t, j) => {
        picks.push(k * S + r.scoreFrom + j);
        targets.push(t);
      });
    });
    const out = model.forward(ids, {
      cache,
      attentionMask: mask,
      logits: "none",
      outputHidden: true,
    });
    if (stats) {
      stats.forwards++;
      stats.tokens += rows.length * S;
    }
    collect(out.hidden as tf.Tensor3D, rows.length * S, picks, targets, rows);
  }

  /** Log-probs and argmaxes at the picked positions of `hidden`; results in the order of `rows`' targets. */
  function collect(
    hidden: tf.Tensor3D,
    slots: number,
    picks: number[],
    targets: number[],
    rows: Row[],
  ): void {
    const { vocab, hidden: E } = model.dims;
    const [lp, am] = tf.tidy(() => {
      const h = tf.gather(tf.reshape(hidden, [slots, E]), tf.tensor1d(picks, "int32"));
      const logits = model.lmHead(h as tf.Tensor2D);
      const { lse } = softmaxAndLogSumExp(logits);
      const flat = tf.tensor1d(
        targets.map((t, n) => n * vocab + t),
        "int32",
      );
      return [tf.sub(tf.gather(tf.reshape(logits, [-1]), flat), lse), tf.argMax(logits, -1)];
    }) as [tf.Tensor1D, tf.Tensor1D];
    hidden.dispose();
    const logprobs = lp.dataSync();
    const argmaxes = am.dataSync();
    lp.dispose();
    am.dispose();
    let n = 0;
    for (const r of rows) {
      let sum = 0;
      let greedy = true;
      for (const t of r.targets) {
        sum += logprobs[n] as number;
        if (argmaxes[n] !== t) greedy = false;
        n++;
      }
      results[r.index] = { logprob: sum, isGreedy: greedy };
    }
  }
}

export interface ScoringModelOptions {
  name: string;
  /** Default `max_position_embeddings`. */
  maxLength?: number;
  /** Default true. */
  shareContext?: boolean;
  /** Rows per forward, default 8. */
  batchSize?: number;
  /**
   * Prefix reuse across calls (few-shot examples shared by many documents; see prefix-cache.ts): its memory
   * budget and settings. `{ maxBytes: 0 }` turns it off. Results are the same bits either way.
   */
  prefixCache?: PrefixCacheOptions;
}

/** A ScoringModel over a local model, with the prefix cache it keeps between calls. */
export interface LocalScoringModel extends ScoringModel {
  /** Null when context sharing is off. */
  readonly prefixCache: PrefixCache | null;
}

/** The core `ScoringModel` over a local model: what the eval and the CLI use. */
export function asScoringModel(model: CausalLM, o: ScoringModelOptions): LocalScoringModel {
  const maxLength = o.maxLength ?? model.config.max_position_embeddings;
  const prefixCache = o.shareContext === false ? null : createPrefixCache(model, o.prefixCache);
  return {
    name: o.name,
    maxLength,
    prefixCache,
    logLikelihood: (requests, run = {}) =>
      logLikelihood(model, requests, {
        ...run,
        maxLength,
        shareContext: o.shareContext,
        batchSize: o.batchSize,
        prefixCache: prefixCache ?? undefined,
      }),
  };
}

export interface TokenLogprobs {
  /** Log-probability of each token given the ones before it; `null` for the first token. */
  logprobs: (number | null)[];
  /** The `topK` most likely tokens at each position (id -> logprob), `null` for the first. */
  top: (Map<number, number> | null)[];
}

/**
 * Per-token log-probabilities of whole sequences (an OpenAI-style `logprobs` / `echo`): one forward per batch
 * of right-padded sequences, lm_head on every position but the last of each sequence.
 */
export async function tokenLogprobs(
  model: CausalLM,
  sequences: number[][],
  topK: number,
  options: { batchSize?: number; signal?: AbortSignal } = {},
): Promise<TokenLogprobs[]> {
  const { vocab, hidden: E } = model.dims;
  if (!Number.isInteger(topK) || topK < 0 || topK > vocab) {
    throw new HippoError("INVALID_ARGUMENT", "topK out of range", {
      expected: `0..${vocab}`,
      got: String(topK),
    });
  }
  sequences.forEach((s, i) => {
    checkIds(s, vocab, i, "sequence");
    if (s.length === 0) throw new HippoError("INVALID_ARGUMENT", "empty sequence", { row: i });
  });
  const batchSize = options.batchSize ?? 8;
  const out: TokenLogprobs[] = [];
  for (let s = 0; s < sequences.length; s += batchSize) {
    if (options.signal?.aborted) throw new HippoError("ABORTED", "scoring was aborted");
    const batch = sequences.slice(s, s + batchSize);
    const T = Math.max(...batch.map((b) => b.length));
    const { ids, mask } = padRight(batch, T, 0);
    const picks: number[] = [];
    const targets: number[] = [];
    batch.forEach((seq, k) => {
      for (let t = 0; t + 1 < seq.length; t++) {
        picks.push(k * T + t);
        targets.push(seq[t + 1] as number);
      }
    });
    let lp: Float32Array | Int32Array | Uint8Array = new Float32Array(0);
    let topV: Float32Array | Int32Array | Uint8Array = new Float32Array(0);
    let topI: Float32Array | Int32Array | Uint8Array = new Int32Array(0);
    if (picks.length > 0) {
      const hidden = model.forward(ids, { attentionMask: mask, logits: "none", outputHidden: true })
        .hidden as tf.Tensor3D;
      const ts = tf.tidy(() => {
        const h = tf.gather(tf.reshape(hidden, [batch.length * T, E]), tf.tensor1d(picks, "int32"));
        const logp = logSoftmaxRows(model.lmHead(h as tf.Tensor2D));
        const flat = tf.tensor1d(
          targets.map((t, n) => n * vocab + t),
          "int32",
        );
        const chosen = tf.gather(tf.reshape(logp, [-1]), flat);
        if (topK === 0) return [chosen];
        const { values, indices } = tf.topk(logp, topK);
        return [chosen, values, indices];
      });
      hidden.dispose();
      lp = (ts[0] as tf.Tensor).dataSync();
      if (topK > 0) {
        topV = (ts[1] as tf.Tensor).dataSync();
        topI = (ts[2] as tf.Tensor).dataSync();
      }
      for (const t of ts) t.dispose();
    }
    let n = 0;
    for (const seq of batch) {
      const r: TokenLogprobs = { logprobs: [null], top: [null] };
      for (let t = 1; t < seq.length; t++, n++) {
        r.logprobs.push(lp[n] as number);
        const m = new Map<number, number>();
        for (let j = 0; j < topK; j++) m.set(topI[n * topK + j] as number, topV[n * topK + j] as number);
        r.top.push(m);
      }
      out.push(r);
    }
    await yieldToLoop();
  }
  return out;
}
