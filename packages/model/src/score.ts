/**
 * Log-likelihood scoring with lm-evaluation-harness semantics (`_loglikelihood_tokens`): for each (context,
 * continuation) the model reads `inp = (ctx + cont)[-(maxLength + 1):][:-1]` and the last `len(cont)` positions
 * of its output predict the continuation. The result is the summed log-probability of the continuation tokens
 * and whether every one of them is the argmax at its position (`isGreedy`). An empty context is replaced by
 * the EOT token (the EOS id), as the harness does.
 *
 * Context sharing. `inp` splits into a head (`inp` up to and including the token that predicts the
 * continuation's first token: the context) and a tail (the continuation without its last token). Requests with
 * the same head (the options of one multiple-choice question) run as one row: the head once, then every tail
 * as its own segment that sees the head (`parentSegmentIds`) but not the other tails, positions continuing
 * the head's; the head's last position scores the first token of every option. So a question's context runs
 * once, in the same forward as its options. Truncated requests share only with requests truncated to the same
 * tokens. The naive path (every request a full forward, as the harness does) gives the same numbers up to
 * float32 rounding; both are tested against each other.
 *
 * Few-shot prefix reuse (`prefixCache`, see prefix-cache.ts): a question whose head starts with a prefix seen
 * before (the same 5 shots) runs only the rest of its head and its tails, on a copy of the prefix's keys and
 * values: the same bits as without reuse.
 *
 * Only the scored positions leave the last layer (`hiddenRows`) and go through lm_head (the forward returns
 * their hidden states; `lmHead` runs on them). Questions run longest first (the harness's order: bounded memory, little padding), up to
 * `batchSize` requests per forward, and results come back in request order.
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
  /** Requests (continuations) per forward; default 8. */
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
  /** Model forward calls. */
  forwards: number;
  /** Token slots run through the model, padding included. */
  tokens: number;
  /** Distinct shared prefixes run (a context minus its last token: 1-token contexts share nothing). */
  prefixes: number;
  /** Context tokens not run because their keys and values came from the prefix cache. */
  reusedTokens?: number;
}

/** One request, split for sharing. */
interface Request {
  index: number;
  /** The model's whole input `(ctx + cont)[-(maxLength + 1):][:-1]`. */
  inp: number[];
  /** inp without `tail`: its last token predicts the continuation's first. */
  head: number[];
  /** The continuation without its last token: tail[j] predicts cont[j + 1]. */
  tail: number[];
  /** The continuation: the scored tokens. */
  cont: number[];
}

/** Requests run together in one row: one head and its tails (shared), or a single request's whole input. */
interface Group {
  head: number[];
  requests: Request[];
  shared: boolean;
  /** Tokens of the row. */
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

function splitRequests(
  model: CausalLM,
  requests: LogLikelihoodRequest[],
  maxLength: number,
  eot: number | undefined,
): Request[] {
  const { vocab } = model.dims;
  return requests.map((req, index) => {
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
    const tail = cont.slice(0, -1);
    // len(inp) >= len(cont), so the head keeps at least the token that predicts cont[0].
    return { index, inp, head: inp.slice(0, inp.length - tail.length), tail, cont };
  });
}

/**
 * Group requests by head (shared) or one per group (unshared); a shared group whose row would not fit a
 * sliding window (slots, not positions, are what it counts) falls back to one group per request.
 */
function planGroups(requests: Request[], share: boolean, window: number | null): Group[] {
  const groups = new Map<string, Group>();
  const singles: Group[] = [];
  const single = (r: Request): Group => ({ head: r.inp, requests: [r], shared: false, length: r.inp.length });
  for (const r of requests) {
    if (!share) {
      singles.push(single(r));
      continue;
    }
    const key = r.head.join(",");
    let g = groups.get(key);
    if (g === undefined) {
      g = { head: r.head, requests: [], shared: true, length: r.head.length };
      groups.set(key, g);
    }
    g.requests.push(r);
    g.length += r.tail.length;
  }
  const all: Group[] = [...singles];
  for (const g of groups.values()) {
    if (window !== null && g.length > window) all.push(...g.requests.map(single));
    else all.push(g);
  }
  // Longest first; ties keep the requests' order (Array.prototype.sort is stable).
  all.sort((a, b) => b.length - a.length || (a.requests[0]?.index ?? 0) - (b.requests[0]?.index ?? 0));
  return all;
}

/** The tokens of a group's row from `from` on: head[from:], then each tail; and the scored (slot, target)s. */
function rowOf(g: Group, from: number) {
  const ids: number[] = [];
  const seg: number[] = [];
  const parent: number[] = [];
  const pos: number[] = [];
  const picks: { slot: number; target: number }[][] = [];
  for (let t = from; t < g.head.length; t++) {
    ids.push(g.head[t] as number);
    seg.push(0);
    parent.push(0);
    pos.push(t);
  }
  const headLast = g.head.length - 1 - from;
  g.requests.forEach((r, k) => {
    if (!g.shared) {
      // The whole input: its last len(cont) positions score the continuation.
      const first = r.inp.length - r.cont.length - from;
      picks.push(r.cont.map((target, j) => ({ slot: first + j, target })));
      return;
    }
    const start = ids.length;
    r.tail.forEach((t, j) => {
      ids.push(t);
      seg.push(k + 1);
      parent.push(0);
      pos.push(g.head.length + j);
    });
    picks.push(r.cont.map((target, j) => ({ slot: j === 0 ? headLast : start + j - 1, target })));
  });
  return { ids, seg, parent, pos, picks };
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
  const groups = planGroups(splitRequests(model, requests, maxLength, eot), share, model.dims.slidingWindow);
  const stats = options.stats;
  const pad = eot ?? 0; // padded slots are masked; any valid id does
  const results = new Array<LogLikelihoodResult>(requests.length);
  const progress = (options.progress ?? silentProgress).start({
    name: "loglikelihood",
    total: requests.length,
    unit: "req",
  });
  const check = () => {
    if (options.signal?.aborted) {
      throw new HippoError("ABORTED", "scoring was aborted", { cause: options.signal.reason });
    }
  };
  const prefixCache = share ? options.prefixCache : undefined;
  // Prefix-cache hits, looked up once per group in the order the groups run. The tokens after a reused prefix
  // (the rest of the head and the tails, one forward) must keep to the per-head attention path.
  const hits = new Map<Group, { cache: KVCache; length: number } | null>();
  const hitOf = (grp: Group) => {
    if (prefixCache === undefined || !grp.shared) return null;
    if (!hits.has(grp))
      hits.set(grp, prefixCache.take(grp.head.slice(0, -1), 1 + grp.length - grp.head.length));
    return hits.get(grp) ?? null;
  };

  try {
    let g = 0;
    while (g < groups.length) {
      const first = groups[g++] as Group;
      check();
      const hit = hitOf(first);
      if (hit !== null) {
        // A context that starts with a cached prefix runs alone, from a copy of the prefix's keys and values.
        hits.delete(first);
        try {
          scoreRows([first], hit);
        } finally {
          disposeCache(hit.cache);
        }
      } else {
        // Pack whole groups while their requests fit the batch and their rows are of similar length
        // (padding costs full tokens); a group that reuses a cached prefix waits for its own turn.
        const batch: Group[] = [first];
        let count = first.requests.length;
        const fits = (next: Group) =>
          count + next.requests.length <= batchSize &&
          first.length - next.length <= Math.max(16, 0.1 * first.length) &&
          hitOf(next) === null;
        while (g < groups.length && fits(groups[g] as Group)) {
          const next = groups[g++] as Group;
          count += next.requests.length;
          batch.push(next);
        }
        scoreRows(batch, null);
      }
      await yieldToLoop();
    }
  } finally {
    // Hits looked up but not run (an abort or an error): their caches are ours to free.
    for (const hit of hits.values()) if (hit !== null) disposeCache(hit.cache);
    progress.done();
  }
  return results;

  /** One forward of the groups' rows (on a prefix cache's copy for a single hit); fills their results. */
  function scoreRows(batch: Group[], hit: { cache: KVCache; length: number } | null): void {
    const from = hit?.length ?? 0;
    const rows = batch.map((grp) => rowOf(grp, from));
    const T = Math.max(...rows.map((r) => r.ids.length));
    const ids: number[][] = [];
    const mask: number[][] = [];
    const segmentIds: number[][] = [];
    const parentSegmentIds: number[][] = [];
    const positionIds: number[][] = [];
    const picks: number[] = [];
    const targets: number[] = [];
    const order: Request[] = [];
    rows.forEach((r, b) => {
      const padding = T - r.ids.length;
      ids.push([...r.ids, ...new Array<number>(padding).fill(pad)]);
      mask.push([...r.ids.map(() => 1), ...new Array<number>(padding).fill(0)]);
      segmentIds.push([...r.seg, ...new Array<number>(padding).fill(-1)]);
      parentSegmentIds.push([...r.parent, ...new Array<number>(padding).fill(-1)]);
      positionIds.push([...r.pos, ...new Array<number>(padding).fill(0)]);
      (batch[b] as Group).requests.forEach((req, k) => {
        for (const p of r.picks[k] ?? []) {
          picks.push(b * T + p.slot);
          targets.push(p.target);
        }
        order.push(req);
      });
    });
    const padded = rows.some((r) => r.ids.length < T);
    // Only the scored slots leave the last layer (hiddenRows); picks index into them.
    const keep = [...new Set(picks)].sort((x, y) => x - y);
    const at = new Map(keep.map((slot, i) => [slot, i]));
    const out = model.forward(ids, {
      cache: hit?.cache,
      attentionMask: padded ? mask : undefined,
      segmentIds,
      parentSegmentIds,
      positionIds,
      logits: "none",
      outputHidden: true,
      hiddenRows: keep,
    });
    if (stats) {
      stats.forwards++;
      stats.tokens += batch.length * T;
      stats.prefixes += batch.filter((grp) => grp.shared && grp.head.length > 1).length;
      if (hit !== null) stats.reusedTokens = (stats.reusedTokens ?? 0) + hit.length;
    }
    collect(
      out.hidden as tf.Tensor3D,
      keep.length,
      picks.map((slot) => at.get(slot) as number),
      targets,
      order,
    );
    progress.tick(order.length);
  }

  /** Log-probs and argmaxes at the picked positions of `hidden`; results in the order of `rows`' targets. */
  function collect(
    hidden: tf.Tensor3D,
    slots: number,
    picks: number[],
    targets: number[],
    rows: Request[],
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
      for (const t of r.cont) {
        sum += logprobs[n] as number;
        if (argmaxes[n] !== t) greedy = false;
        n++;
      }
      results[r.index] = { logprob: sum, isGreedy: greedy };
    }
  }
}

function padRight(rows: number[][], width: number, pad: number): { ids: number[][]; mask: number[][] } {
  return {
    ids: rows.map((r) => [...r, ...new Array<number>(width - r.length).fill(pad)]),
    mask: rows.map((r) => Array.from({ length: width }, (_, t) => (t < r.length ? 1 : 0))),
  };
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
