/**
 * Autoregressive generation on the KV cache, as transformers' `generate`: the prompts are left-padded into one
 * batch and run once (prefill), then each step feeds one token per unfinished sequence. Padding is masked and
 * position ids count only real tokens (the forward's default, HF's `cumsum(attention_mask) - 1`), so a padded
 * row generates what it would alone. Sequences that finish leave the batch (their cache rows are dropped).
 *
 * Token selection (greedy, temperature, top-k, top-p) is in sampling.ts. Stops: EOS ids (the config's
 * `eos_token_id`, a number or a list, unless overridden), extra stop token ids, stop strings (checked on the
 * decoded generated text; needs `decode`), `maxNewTokens`, and the model's maximum length.
 */
import {
  createRng,
  type GenerationResult,
  type GenerativeModel,
  HippoError,
  type Rng,
  type RunOptions,
  silentProgress,
} from "@hippocrates/core";
import type * as tf from "@tensorflow/tfjs-core";
import { disposeCache, type KVCache } from "./cache.js";
import { repeatCacheRows } from "./cache-rows.js";
import type { CausalLM } from "./llama.js";
import { checkSamplingOptions, type SamplingOptions, selectToken } from "./sampling.js";

export interface GenerateOptions extends SamplingOptions, RunOptions {
  /** Tokens to generate at most per prompt. */
  maxNewTokens: number;
  /** Seed of the sampler (each prompt gets its own stream forked from it, so batching does not change draws). */
  seed?: number;
  /** End-of-sequence ids; default the config's `eos_token_id` (number or list). `[]` never stops on EOS. */
  eosTokenIds?: number[];
  /** More ids that end a sequence (kept in the output, like EOS). */
  stopTokenIds?: number[];
  /** Strings that end a sequence; `text` is cut right before the first one. Needs `decode`. */
  stopStrings?: string[];
  /** Token ids -> text of the generated part (e.g. a tokenizer's decode); fills `text` in the results. */
  decode?: (ids: number[]) => string | Promise<string>;
  /** Streaming: called once per new token, with the prompt's index. */
  onToken?: (sequence: number, tokenId: number) => void;
  /** Prompts per batch (default: all at once). Prompts are grouped by length to limit padding. */
  batchSize?: number;
  /** Id written into padded slots (never attended to). Default: pad, else EOS, else 0. */
  padTokenId?: number;
  /** Prompt + generated tokens stop at this length (default `max_position_embeddings`). */
  maxLength?: number;
  /** Also return the raw next-token logits of every step (before warping), e.g. for tests. */
  returnLogits?: boolean;
}

export interface GenerateResult extends GenerationResult {
  /** Generated ids (prompt excluded). A stop/EOS token that ended the sequence is included, as in HF. */
  tokens: number[];
  /** With `decode`: the generated text, cut before the stop string that ended it. */
  text?: string;
  /** What ended a sequence with finishReason "stop". */
  stoppedBy?: { kind: "eos" | "token" | "string"; value: number | string };
  /** With `returnLogits`: one [vocab] row per generated token. */
  logits?: Float32Array[];
}

function configEos(model: CausalLM): number[] {
  const e = model.config.eos_token_id;
  if (typeof e === "number") return [e];
  if (Array.isArray(e)) return e.filter((x): x is number => typeof x === "number");
  return [];
}

function checkIds(ids: unknown, vocab: number, where: string): void {
  if (!Array.isArray(ids)) throw new HippoError("INVALID_ARGUMENT", `${where} must be an array of token ids`);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id >= vocab) {
      throw new HippoError("INVALID_ARGUMENT", "token id out of range", {
        key: `${where}[${i}]`,
        expected: `integer in [0, ${vocab})`,
        got: String(id),
      });
    }
  }
}

/** Yield to the event loop between steps so an abort (or an HTTP request) can get through. */
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

function aborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new HippoError("ABORTED", "generation was aborted", { cause: signal.reason });
}

interface SeqState {
  tokens: number[];
  logits: Float32Array[];
  done: boolean;
  finishReason: "stop" | "length";
  stoppedBy?: GenerateResult["stoppedBy"];
  text?: string;
}

export async function generate(
  model: CausalLM,
  prompts: number[][],
  options: GenerateOptions,
): Promise<GenerateResult[]> {
  const { vocab } = model.dims;
  if (!Number.isInteger(options.maxNewTokens) || options.maxNewTokens < 0) {
    throw new HippoError("INVALID_ARGUMENT", "maxNewTokens must be an integer >= 0", {
      key: "maxNewTokens",
      got: String(options.maxNewTokens),
    });
  }
  checkSamplingOptions(options);
  if (!Array.isArray(prompts))
    throw new HippoError("INVALID_ARGUMENT", "prompts must be an array of id arrays");
  prompts.forEach((p, i) => {
    checkIds(p, vocab, `prompts[${i}]`);
    if (p.length === 0) throw new HippoError("INVALID_ARGUMENT", "empty prompt", { key: `prompts[${i}]` });
  });
  const stopStrings = options.stopStrings ?? [];
  if (stopStrings.length > 0 && options.decode === undefined) {
    throw new HippoError("INVALID_ARGUMENT", "stopStrings need a decode function", { key: "decode" });
  }
  if (stopStrings.some((s) => typeof s !== "string" || s.length === 0)) {
    throw new HippoError("INVALID_ARGUMENT", "stop strings must be non-empty strings", {
      key: "stopStrings",
    });
  }
  const eos = new Set(options.eosTokenIds ?? configEos(model));
  const stopIds = new Set(options.stopTokenIds ?? []);
  const maxLength = options.maxLength ?? model.config.max_position_embeddings;
  const pad =
    options.padTokenId ??
    (typeof model.config.pad_token_id === "number" ? model.config.pad_token_id : undefined) ??
    [...eos][0] ??
    0;
  checkIds([pad], vocab, "padTokenId");
  const batchSize = options.batchSize ?? Math.max(1, prompts.length);
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new HippoError("INVALID_ARGUMENT", "batchSize must be a positive integer", {
      got: String(batchSize),
    });
  }

  // One RNG stream per prompt, forked in prompt order: draws do not depend on batching or sorting.
  const base = createRng(options.seed ?? 0);
  const rngs = prompts.map(() => base.fork());
  const states: SeqState[] = prompts.map(() => ({
    tokens: [],
    logits: [],
    done: false,
    finishReason: "length",
  }));
  const progress = (options.progress ?? silentProgress).start({
    name: "generate",
    total: prompts.length * options.maxNewTokens,
    unit: "tok",
  });

  // Longest first, so each batch holds prompts of similar length.
  const order = prompts
    .map((_, i) => i)
    .sort((a, b) => (prompts[b] as number[]).length - (prompts[a] as number[]).length);
  try {
    for (let s = 0; s < order.length; s += batchSize) {
      await generateBatch(order.slice(s, s + batchSize));
    }
  } finally {
    progress.done();
  }

  return states.map((st) => ({
    tokens: st.tokens,
    finishReason: st.finishReason,
    stoppedBy: st.stoppedBy,
    text: st.text,
    logits: options.returnLogits ? st.logits : undefined,
  }));

  /** Record token `id` for prompt `p` and decide whether the sequence ends. */
  async function accept(p: number, id: number, row: Float32Array | null): Promise<void> {
    const st = states[p] as SeqState;
    st.tokens.push(id);
    if (row !== null) st.logits.push(row);
    options.onToken?.(p, id);
    progress.tick(1);
    if (eos.has(id) || stopIds.has(id)) {
      st.done = true;
      st.finishReason = "stop";
      st.stoppedBy = { kind: eos.has(id) ? "eos" : "token", value: id };
    }
    const full =
      st.tokens.length >= options.maxNewTokens ||
      (prompts[p] as number[]).length + st.tokens.length >= maxLength;
    if (options.decode !== undefined && (stopStrings.length > 0 || st.done || full)) {
      const text = await options.decode(st.tokens);
      st.text = text;
      let cut = -1;
      let which = "";
      for (const s of stopStrings) {
        const at = text.indexOf(s);
        if (at >= 0 && (cut < 0 || at < cut)) {
          cut = at;
          which = s;
        }
      }
      if (cut >= 0) {
        st.text = text.slice(0, cut);
        if (!st.done) {
          st.done = true;
          st.finishReason = "stop";
          st.stoppedBy = { kind: "string", value: which };
        }
      }
    }
    if (!st.done && full) {
      st.done = true;
      st.finishReason = "length";
    }
  }

  async function generateBatch(batch: number[]): Promise<void> {
    let active = batch.filter((p) => {
      const st = states[p] as SeqState;
      if (options.maxNewTokens === 0 || (prompts[p] as number[]).length >= maxLength) st.done = true;
      return !st.done;
    });
    if (active.length === 0) return;
    const T = Math.max(...active.map((p) => (prompts[p] as number[]).length));
    const ids = active.map((p) => {
      const prompt = prompts[p] as number[];
      return [...new Array<number>(T - prompt.length).fill(pad), ...prompt];
    });
    const attentionMask = active.map((p) => {
      const n = (prompts[p] as number[]).length;
      return Array.from({ length: T }, (_, t) => (t < T - n ? 0 : 1));
    });
    let cache: KVCache = model.createCache(active.length);
    try {
      let logits = model.forward(ids, { cache, attentionMask, logits: "last" }).logits as tf.Tensor3D;
      for (;;) {
        const data = logits.dataSync() as Float32Array;
        logits.dispose();
        for (let k = 0; k < active.length; k++) {
          const p = active[k] as number;
          const row = data.subarray(k * vocab, (k + 1) * vocab);
          const id = selectToken(row, options, rngs[p] as Rng);
          await accept(p, id, options.returnLogits ? row.slice() : null);
        }
        aborted(options.signal);
        const keep: number[] = [];
        active.forEach((p, k) => {
          if (!(states[p] as SeqState).done) keep.push(k);
        });
        if (keep.length === 0) break;
        if (keep.length < active.length) {
          const next = repeatCacheRows(cache, keep);
          disposeCache(cache);
          cache = next;
          active = keep.map((k) => active[k] as number);
        }
        await tick();
        aborted(options.signal);
        const step = active.map((p) => {
          const t = (states[p] as SeqState).tokens;
          return [t[t.length - 1] as number];
        });
        logits = model.forward(step, { cache, logits: "last" }).logits as tf.Tensor3D;
      }
    } finally {
      disposeCache(cache);
    }
  }
}

export interface GenerativeModelOptions {
  name: string;
  /** Default `max_position_embeddings`. */
  maxLength?: number;
  /** Used for stop strings (and `text`) when a request has them. */
  decode?: (ids: number[]) => string | Promise<string>;
  /** Override the config's EOS ids. */
  eosTokenIds?: number[];
  batchSize?: number;
}

/** The core `GenerativeModel` over a local model (what the CLI's server and the eval use). */
export function asGenerativeModel(model: CausalLM, o: GenerativeModelOptions): GenerativeModel {
  const maxLength = o.maxLength ?? model.config.max_position_embeddings;
  return {
    name: o.name,
    maxLength,
    generate: (prompts, options) =>
      generate(model, prompts, {
        ...options,
        maxLength,
        decode: options.stopStrings?.length ? o.decode : undefined,
        eosTokenIds: o.eosTokenIds,
        batchSize: o.batchSize,
      }),
  };
}
