/**
 * Next-token selection on one row of logits, in plain JS (one row of at most a vocabulary's floats per
 * sequence per step: cheaper than a round of tensor ops). The warpers follow transformers' logits processors,
 * applied in HF's order: temperature, then top-k, then top-p, each keeping at least one token
 * (min_tokens_to_keep = 1). Filtered entries become -Infinity, as HF's `filter_value`.
 */
import { HippoError, type Rng } from "@hippocrates/core";

export interface SamplingOptions {
  /** 0 or absent: greedy (argmax). */
  temperature?: number;
  /** Keep the k most likely tokens (ties with the k-th are kept, as HF's `scores < kth_value`). 0 = off. */
  topK?: number;
  /** Nucleus: keep the smallest set of most likely tokens whose probability reaches p. 1 = off. */
  topP?: number;
}

export function checkSamplingOptions(o: SamplingOptions): void {
  const bad = (key: string, expected: string, got: unknown) =>
    new HippoError("INVALID_ARGUMENT", `bad sampling option ${key}`, { key, expected, got: String(got) });
  if (o.temperature !== undefined && !(Number.isFinite(o.temperature) && o.temperature >= 0))
    throw bad("temperature", "a finite number >= 0", o.temperature);
  if (o.topK !== undefined && !(Number.isInteger(o.topK) && o.topK >= 0))
    throw bad("topK", "an integer >= 0", o.topK);
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) throw bad("topP", "a number in (0, 1]", o.topP);
}

/** Index of the largest value; the lowest index wins ties (as torch.argmax). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  let bestV = x[0] as number;
  for (let i = 1; i < x.length; i++) {
    const v = x[i] as number;
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}

/** HF TopKLogitsWarper: entries below the k-th largest value become -Infinity (in place). */
export function topKFilter(logits: Float32Array, k: number): Float32Array {
  if (k <= 0 || k >= logits.length) return logits;
  const sorted = Float32Array.from(logits).sort(); // ascending
  const kth = sorted[sorted.length - k] as number;
  for (let i = 0; i < logits.length; i++) if ((logits[i] as number) < kth) logits[i] = -Infinity;
  return logits;
}

/** Softmax in float64 (stable: shifted by the max). -Infinity entries get probability 0. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i] as number);
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp((logits[i] as number) - m);
    p[i] = e;
    sum += e;
  }
  for (let i = 0; i < p.length; i++) p[i] = (p[i] as number) / sum;
  return p;
}

/**
 * HF TopPLogitsWarper: sort ascending, cumulative probabilities, remove the entries with cumulative
 * probability <= 1 - p, always keeping the most likely one (in place). The removed ones are exactly the
 * least likely tokens whose total probability stays within 1 - p.
 */
export function topPFilter(logits: Float32Array, p: number): Float32Array {
  if (p >= 1) return logits;
  const probs = softmax(logits);
  const order = Array.from({ length: logits.length }, (_, i) => i);
  // Ascending by logit; ties by index, a stable order like torch.sort's on CPU.
  order.sort((a, b) => (logits[a] as number) - (logits[b] as number) || a - b);
  let cum = 0;
  for (let r = 0; r < order.length - 1; r++) {
    const i = order[r] as number;
    cum += probs[i] as number;
    if (cum > 1 - p) break;
    logits[i] = -Infinity;
  }
  return logits;
}

/** Temperature, top-k, top-p on a copy of `logits`: the distribution a sampler draws from. */
export function warpLogits(logits: ArrayLike<number>, o: SamplingOptions): Float32Array {
  const t = o.temperature ?? 1;
  const out = new Float32Array(logits.length);
  for (let i = 0; i < out.length; i++) out[i] = (logits[i] as number) / t;
  if (o.topK !== undefined && o.topK > 0) topKFilter(out, o.topK);
  if (o.topP !== undefined && o.topP < 1) topPFilter(out, o.topP);
  return out;
}

/** Draw an index from the probabilities by inverse CDF with one uniform number. */
export function sampleFrom(probs: Float64Array, rng: Rng): number {
  const u = rng.next();
  let cum = 0;
  let last = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i] as number;
    if (p <= 0) continue;
    cum += p;
    last = i;
    if (u < cum) return i;
  }
  return last; // rounding left cum slightly below 1
}

/** Greedy when temperature is 0/absent, else a draw from the warped distribution. */
export function selectToken(logits: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  if (o.temperature === undefined || o.temperature === 0) return argmax(logits);
  return sampleFrom(softmax(warpLogits(logits, o)), rng);
}
