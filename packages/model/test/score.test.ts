import { createRng, HippoError, type LogLikelihoodRequest } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { disposeCache, selectCacheRows } from "../src/cache.js";
import { repeatCacheRows } from "../src/cache-rows.js";
import { generate } from "../src/generate.js";
import { createRandomModel, loadModel } from "../src/io.js";
import type { CausalLM } from "../src/llama.js";
import { asScoringModel, logLikelihood, tokenLogprobs } from "../src/score.js";
import { setup, smallMistralConfig, TINY } from "./helpers.js";

let model: CausalLM;
beforeAll(async () => {
  await setup();
  model = await loadModel(TINY); // max_position_embeddings 128, vocab 512, eos 2
});
afterAll(() => model?.dispose());

const rng = createRng(2024);
const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(509));

/**
 * Multiple-choice requests: 4 questions x 4 options of different lengths (one option a single token), one
 * question whose context (150 tokens) exceeds the model's 128, an empty context, and a lone request.
 */
function mcRequests(): LogLikelihoodRequest[] {
  const reqs: LogLikelihoodRequest[] = [];
  for (const ctxLen of [23, 41, 9, 150]) {
    const context = ids(ctxLen);
    for (const contLen of [1, 3, 6, 4]) reqs.push({ context, continuation: ids(contLen) });
  }
  reqs.push({ context: [], continuation: ids(3) });
  reqs.push({ context: ids(1), continuation: ids(2) });
  return reqs;
}

/** The harness's computation written out: one full forward of (ctx+cont)[-(L+1):][:-1], float64 log-softmax. */
function handScore(req: LogLikelihoodRequest, maxLength: number): { logprob: number; isGreedy: boolean } {
  const ctx = req.context.length > 0 ? req.context : [2];
  const whole = [...ctx, ...req.continuation];
  const inp = whole.slice(-(maxLength + 1)).slice(0, -1);
  const { logits } = model.forward([inp], { logits: "all" });
  const data = logits?.dataSync() as Float32Array;
  logits?.dispose();
  const V = 512;
  let logprob = 0;
  let isGreedy = true;
  req.continuation.forEach((tok, j) => {
    const pos = inp.length - req.continuation.length + j;
    const row = data.subarray(pos * V, (pos + 1) * V);
    let m = -Infinity;
    let best = 0;
    for (let v = 0; v < V; v++) {
      if ((row[v] as number) > m) {
        m = row[v] as number;
        best = v;
      }
    }
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp((row[v] as number) - m);
    logprob += (row[tok] as number) - m - Math.log(z);
    if (best !== tok) isGreedy = false;
  });
  return { logprob, isGreedy };
}

describe("logLikelihood", () => {
  it("shared-context scoring equals naive scoring and a hand computation (truncation, 1-token options, empty context)", async () => {
    const reqs = mcRequests();
    const naiveStats = { forwards: 0, tokens: 0, prefixes: 0 };
    const sharedStats = { forwards: 0, tokens: 0, prefixes: 0 };
    const naive = await logLikelihood(model, reqs, { naive: true, stats: naiveStats });
    const batchedUnshared = await logLikelihood(model, reqs, { shareContext: false, batchSize: 5 });
    const shared = await logLikelihood(model, reqs, { stats: sharedStats });
    expect(naiveStats).toEqual({ forwards: reqs.length, tokens: expect.any(Number), prefixes: 0 });
    // 4 questions: 3 share one prefix each; the truncated one's options are cut to different prefixes.
    expect(sharedStats.prefixes).toBe(3 + 4); // 1-token contexts have no prefix
    // The 3 untruncated questions, one per forward: each context runs once instead of 4 times.
    const q3 = reqs.slice(0, 12);
    const n3 = { forwards: 0, tokens: 0, prefixes: 0 };
    const s3 = { forwards: 0, tokens: 0, prefixes: 0 };
    await logLikelihood(model, q3, { naive: true, stats: n3 });
    await logLikelihood(model, q3, { batchSize: 4, stats: s3 });
    expect(s3.tokens).toBeLessThan(n3.tokens / 2);
    let worst = 0;
    const sharedSplit = await logLikelihood(model, reqs, { batchSize: 3 }); // a question's options over 2 chunks
    const sharedPacked = await logLikelihood(model, reqs, { batchSize: 16 }); // several questions per forward
    // Tolerance: the paths compute the same float32 sums in different orders (a cached prefix vs a full
    // sequence, other batch shapes); per-token log-probs are O(10) and their float32 rounding ~1e-6 each.
    for (const other of [batchedUnshared, shared, sharedSplit, sharedPacked]) {
      expect(other).toHaveLength(reqs.length);
      other.forEach((r, i) => {
        worst = Math.max(worst, Math.abs(r.logprob - (naive[i]?.logprob as number)));
        expect(Math.abs(r.logprob - (naive[i]?.logprob as number)), `request ${i}`).toBeLessThan(1e-4);
        expect(r.isGreedy).toBe(naive[i]?.isGreedy);
      });
    }
    console.log(`max |shared - naive| summed logprob: ${worst.toExponential(2)}`);
    reqs.forEach((req, i) => {
      const hand = handScore(req, 128);
      expect(Math.abs(hand.logprob - (naive[i]?.logprob as number)), `request ${i}`).toBeLessThan(1e-4);
      expect(naive[i]?.isGreedy).toBe(hand.isGreedy);
    });
    // Truncation really happened and changed the scores (150 + cont > 129).
    const truncated = reqs[12] as LogLikelihoodRequest;
    const untruncated = handScore(truncated, 1000);
    expect(Math.abs(untruncated.logprob - (naive[12]?.logprob as number))).toBeGreaterThan(1e-3);
    // An empty context is the EOS token.
    const [eos] = await logLikelihood(model, [
      { context: [2], continuation: reqs[16]?.continuation as number[] },
    ]);
    expect(eos?.logprob).toBeCloseTo(shared[16]?.logprob as number, 5);
  });

  it("isGreedy is true exactly when every continuation token is the argmax", async () => {
    const context = ids(12);
    const [gen] = await generate(model, [context], { maxNewTokens: 4, eosTokenIds: [] });
    const greedyCont = gen?.tokens as number[];
    const wrongLast = [...greedyCont.slice(0, 3), ((greedyCont[3] as number) + 1) % 512];
    const reqs = [
      { context, continuation: greedyCont },
      { context, continuation: wrongLast },
      { context, continuation: greedyCont.slice(0, 1) },
    ];
    for (const naive of [true, false]) {
      const out = await logLikelihood(model, reqs, { naive });
      expect(out.map((r) => r.isGreedy)).toEqual([true, false, true]);
      expect(out[1]?.logprob).toBeLessThan(out[0]?.logprob as number);
      out.forEach((r, i) => {
        expect(r.isGreedy).toBe(handScore(reqs[i] as LogLikelihoodRequest, 128).isGreedy);
      });
    }
  });

  it("implements ScoringModel, reports progress, aborts, rejects bad input, and leaks no tensors", async () => {
    const sm = asScoringModel(model, { name: "tiny", batchSize: 4 });
    expect(sm.name).toBe("tiny");
    expect(sm.maxLength).toBe(128);
    const reqs = mcRequests().slice(0, 8);
    const before = tf.memory().numTensors;
    let ticks = 0;
    const out = await sm.logLikelihood(reqs, {
      progress: {
        start: () => ({
          tick: (n = 1) => {
            ticks += n;
          },
          done() {},
        }),
      },
    });
    expect(ticks).toBe(reqs.length);
    const naive = await logLikelihood(model, reqs, { naive: true });
    out.forEach((r, i) => {
      expect(Math.abs(r.logprob - (naive[i]?.logprob as number))).toBeLessThan(1e-4);
    });
    const ctl = new AbortController();
    ctl.abort();
    await expect(sm.logLikelihood(reqs, { signal: ctl.signal })).rejects.toMatchObject({ code: "ABORTED" });
    await expect(sm.logLikelihood([{ context: [1], continuation: [] }])).rejects.toThrow(HippoError);
    await expect(
      sm.logLikelihood([
        { context: [1], continuation: [2] },
        { context: [1, 600], continuation: [2] },
      ]),
    ).rejects.toThrow(/row 1.*context\[1\]/);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("tokenLogprobs", () => {
  it("equals continuation scoring token by token, with the top-k distribution", async () => {
    const seqs = [ids(9), ids(4), [7]];
    const before = tf.memory().numTensors;
    const out = await tokenLogprobs(model, seqs, 3, { batchSize: 2 });
    expect(tf.memory().numTensors).toBe(before);
    expect(out[2]).toEqual({ logprobs: [null], top: [null] });
    for (const [i, seq] of seqs.entries()) {
      const reqs = seq.slice(1).map((tok, t) => ({ context: seq.slice(0, t + 1), continuation: [tok] }));
      const want = await logLikelihood(model, reqs, { naive: true });
      const got = out[i] as { logprobs: (number | null)[]; top: (Map<number, number> | null)[] };
      expect(got.logprobs).toHaveLength(seq.length);
      want.forEach((w, t) => {
        expect(Math.abs((got.logprobs[t + 1] as number) - w.logprob)).toBeLessThan(1e-4);
        const top = [...(got.top[t + 1] as Map<number, number>).entries()];
        expect(top).toHaveLength(3);
        // sorted, and the greedy token is the first of the top list
        expect(top[0]?.[1]).toBeGreaterThanOrEqual(top[1]?.[1] as number);
        if (w.isGreedy) expect(top[0]?.[0]).toBe(seq[t + 1]);
      });
    }
  });
});

describe("repeatCacheRows", () => {
  it("equals selectCacheRows bit for bit (rows repeated and reordered), and leaks nothing", () => {
    const before = tf.memory().numTensors;
    const cache = model.createCache(2);
    model.forward(
      [
        [0, 0, 5, 6, 7],
        [1, 2, 3, 4, 5],
      ],
      {
        cache,
        attentionMask: [
          [0, 0, 1, 1, 1],
          [1, 1, 1, 1, 1],
        ],
        logits: "none",
      },
    );
    for (const rows of [[1, 0, 1], [0], [1, 1, 1, 1]]) {
      const a = repeatCacheRows(cache, rows);
      const b = selectCacheRows(cache, rows);
      expect(a.batch).toBe(rows.length);
      expect(a.length).toBe(b.length);
      expect(a.valid).toEqual(b.valid);
      expect(a.nextPosition).toEqual(b.nextPosition);
      for (let l = 0; l < a.layers; l++) {
        expect(a.keys[l]?.shape).toEqual(b.keys[l]?.shape);
        expect(Array.from(a.keys[l]?.dataSync() ?? [])).toEqual(Array.from(b.keys[l]?.dataSync() ?? []));
        expect(Array.from(a.values[l]?.dataSync() ?? [])).toEqual(Array.from(b.values[l]?.dataSync() ?? []));
      }
      disposeCache(a);
      disposeCache(b);
    }
    expect(() => repeatCacheRows(cache, [2])).toThrow(HippoError);
    disposeCache(cache);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("packed continuations and sliding windows", () => {
  it("a Mistral whose window is shorter than context + continuations scores as the naive path (fallback)", async () => {
    const config = smallMistralConfig(6);
    const m = createRandomModel(config, { seed: 11 });
    const context = [5, 9, 13, 17, 21];
    const requests: LogLikelihoodRequest[] = [[3], [7, 8], [30, 31, 32]].map((continuation) => ({
      context,
      continuation,
    }));
    const shared = await logLikelihood(m, requests);
    // After the first call: the tied head keeps its transposed embedding, a cache of the model, not a leak.
    const before = tf.memory().numTensors;
    const naive = await logLikelihood(m, requests, { naive: true });
    await logLikelihood(m, requests);
    for (let i = 0; i < requests.length; i++) {
      expect(
        Math.abs((shared[i] as { logprob: number }).logprob - (naive[i] as { logprob: number }).logprob),
      ).toBeLessThan(1e-4);
    }
    expect(tf.memory().numTensors).toBe(before);
    m.dispose();
  });
});
