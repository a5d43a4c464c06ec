import { createRng, type LogLikelihoodRequest, type LogLikelihoodResult } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PREFIX_ALIGNMENT } from "../src/engine.js";
import { createRandomModel } from "../src/io.js";
import type { CausalLM } from "../src/llama.js";
import { createPrefixCache } from "../src/prefix-cache.js";
import { asScoringModel, logLikelihood } from "../src/score.js";
import { setup } from "./helpers.js";

let model: CausalLM;
beforeAll(async () => {
  await setup();
  // GQA (2 query heads per KV head), long enough positions for few-shot prompts.
  model = createRandomModel(
    {
      model_type: "llama",
      vocab_size: 300,
      hidden_size: 64,
      intermediate_size: 96,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 1024,
      eos_token_id: 2,
    },
    { seed: 5 },
  );
});
afterAll(() => model?.dispose());

const rng = createRng(77);
const ids = (n: number) => Array.from({ length: n }, () => 3 + rng.int(297));

/**
 * Documents as a few-shot task sends them: one shared prefix (the "shots", `shotTokens` long) in front of each
 * question, 4 options of 1-5 tokens. Question lengths include very short ones (the rest after an aligned cut
 * then falls under the batched-attention threshold) and an unaligned shot length.
 */
function fewShotDocs(shotTokens: number, questions: number[]): LogLikelihoodRequest[][] {
  const shots = ids(shotTokens);
  return questions.map((q) => {
    const context = [...shots, ...ids(q)];
    return [1, 3, 5, 2].map((c) => ({ context, continuation: ids(c) }));
  });
}

describe("few-shot prefix reuse (prefix cache)", () => {
  it("scores every document to the same bits as without reuse, one document per call (eval's way)", async () => {
    for (const shotTokens of [150, 203]) {
      const docs = fewShotDocs(shotTokens, [40, 3, 1, 70, 17, 9, 33]);
      const reusing = asScoringModel(model, { name: "reuse" });
      const got: LogLikelihoodResult[][] = [];
      for (const doc of docs) got.push(await reusing.logLikelihood(doc));
      const stats = reusing.prefixCache?.stats;
      // The first document is seen alone, the second discovers the shared shots: every later one reuses them.
      expect(stats?.entriesCreated).toBe(1);
      expect(stats?.hits).toBe(docs.length - 1);
      // The one entry ran its prefix once (the bench counts these tokens as work done).
      expect(stats?.tokensRun).toBeGreaterThanOrEqual(shotTokens - PREFIX_ALIGNMENT * 2);
      expect(stats?.tokensReused).toBeLessThanOrEqual((stats?.hits ?? 0) * (stats?.tokensRun ?? 0));
      expect(stats?.tokensReused).toBeGreaterThanOrEqual(
        (docs.length - 1) * (shotTokens - PREFIX_ALIGNMENT * 2),
      );
      for (let d = 0; d < docs.length; d++) {
        const alone = await logLikelihood(model, docs[d] as LogLikelihoodRequest[]);
        // toBe on the numbers: bit-identical, not merely close.
        (got[d] as LogLikelihoodResult[]).forEach((r, i) => {
          expect(r.logprob).toBe(alone[i]?.logprob);
          expect(r.isGreedy).toBe(alone[i]?.isGreedy);
        });
      }
      reusing.prefixCache?.clear();
    }
  });

  it("agrees with the naive path when several documents share one call (hits run alone, misses batch)", async () => {
    const docs = fewShotDocs(130, [25, 60, 8, 44]);
    const reusing = asScoringModel(model, { name: "reuse", batchSize: 8 });
    await reusing.logLikelihood(docs[0] as LogLikelihoodRequest[]); // remembered, not yet shared
    const flat = docs.flat();
    const got = await reusing.logLikelihood(flat);
    const naive = await logLikelihood(model, flat, { naive: true });
    expect(reusing.prefixCache?.stats.hits).toBeGreaterThanOrEqual(3);
    got.forEach((r, i) => {
      expect(Math.abs(r.logprob - (naive[i]?.logprob as number))).toBeLessThan(2e-5);
    });
    reusing.prefixCache?.clear();
  });

  it("forgets its entries when the weights change, and frees every tensor on clear()", async () => {
    const docs = fewShotDocs(140, [30, 50, 20]);
    const before = tf.memory().numTensors;
    const reusing = asScoringModel(model, { name: "reuse" });
    for (const doc of docs) await reusing.logLikelihood(doc);
    expect(reusing.prefixCache?.stats.bytes).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBeGreaterThan(before);
    // Change one weight in place (as merging an adapter does): cached keys/values would now be stale.
    const w = model.weights.get("model.layers.0.self_attn.k_proj.weight") as tf.Variable;
    const saved = w.clone();
    tf.tidy(() => w.assign(tf.mul(w, 1.5)));
    const got = await reusing.logLikelihood(docs[2] as LogLikelihoodRequest[]);
    const fresh = await logLikelihood(model, docs[2] as LogLikelihoodRequest[]);
    got.forEach((r, i) => {
      expect(r.logprob).toBe(fresh[i]?.logprob);
    });
    tf.tidy(() => w.assign(saved));
    saved.dispose();
    reusing.prefixCache?.clear();
    expect(reusing.prefixCache?.stats.bytes).toBe(0);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("keeps within its memory budget (least recently used entries go first)", async () => {
    const perToken = model.dims.layers * 2 * model.dims.kvHeads * model.dims.headDim * 4;
    const cache = createPrefixCache(model, { maxBytes: 200 * perToken });
    // Two subjects with 128-token shots each: both cannot stay.
    for (const shots of [ids(128), ids(128)]) {
      for (let d = 0; d < 3; d++) {
        const hit = cache.take([...shots, ...ids(30)]);
        if (hit !== null) {
          for (const t of [...hit.cache.keys, ...hit.cache.values]) t?.dispose();
        }
      }
      expect(cache.stats.bytes).toBeLessThanOrEqual(200 * perToken);
    }
    expect(cache.stats.entriesCreated).toBe(2);
    cache.clear();
  });

  it("rejects bad settings", () => {
    expect(() => createPrefixCache(model, { maxBytes: -1 })).toThrow(/maxBytes/);
  });
});
