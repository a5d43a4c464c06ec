/**
 * A deterministic ScoringModel for tests: a real, normalized next-token distribution that depends on the
 * whole prefix. p(preferred | prefix) = 1/2 with preferred = hash(prefix) mod V; every other token t gets
 * (1/2) * w(t) / (S - w(preferred)) with w(t) = 1 + (t + h) mod 3 (h the prefix hash) and S = sum of w over the
 * vocabulary (three possible values, precomputed). Log-probs
 * are O(1) per position, so full benchmark runs stay fast; greedy = every continuation token is preferred.
 */
import type { LogLikelihoodRequest, LogLikelihoodResult, ScoringModel } from "@hippocrates/core";

export const VOCAB = 32000;
const w = (t: number, h: number) => 1 + ((t + h) % 3);
const SUMS = [0, 1, 2].map((r) => {
  let s = 0;
  for (let t = 0; t < VOCAB; t++) s += w(t, r);
  return s;
});

/** FNV-1a over 32-bit ints. */
export function step(h: number, token: number): number {
  let x = h;
  for (let s = 0; s < 32; s += 8) {
    x ^= (token >>> s) & 0xff;
    x = Math.imul(x, 16777619) >>> 0;
  }
  return x;
}
export const H0 = 2166136261;

/** murmur3's finalizer, so that nearby prefixes get unrelated values. */
function mix(h: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

export function preferred(h: number): number {
  return mix(h) % VOCAB;
}

export function tokenLogprob(h: number, token: number): number {
  const pref = preferred(h);
  if (token === pref) return Math.log(0.5);
  const r = (mix(h) >>> 20) % 3;
  return Math.log(0.5) + Math.log(w(token, r)) - Math.log((SUMS[r] as number) - w(pref, r));
}

export function scoreRequest(req: LogLikelihoodRequest): LogLikelihoodResult {
  let h = H0;
  for (const t of req.context) h = step(h, t);
  let logprob = 0;
  let isGreedy = true;
  for (const t of req.continuation) {
    logprob += tokenLogprob(h, t);
    if (t !== preferred(h)) isGreedy = false;
    h = step(h, t);
  }
  return { logprob, isGreedy };
}

export function createDetModel(
  maxLength = 4096,
  name = "det-test-model",
): ScoringModel & { calls: number; requests: number } {
  const m = {
    name,
    maxLength,
    calls: 0,
    requests: 0,
    async logLikelihood(requests: LogLikelihoodRequest[]): Promise<LogLikelihoodResult[]> {
      m.calls++;
      m.requests += requests.length;
      return requests.map(scoreRequest);
    },
  };
  return m;
}
