import { readFile } from "node:fs/promises";
import { HippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asGenerativeModel, generate } from "../src/generate.js";
import { createRandomModel, loadModel } from "../src/io.js";
import type { CausalLM } from "../src/llama.js";
import { maxAbsDiff, setup, TINY } from "./helpers.js";

interface Case {
  name: string;
  prompt_ids: number[];
  generated_ids: number[];
}

let model: CausalLM;
let cases: Case[];

beforeAll(async () => {
  await setup();
  model = await loadModel(TINY);
  cases = (JSON.parse(await readFile(`${TINY}/expected/generate.json`, "utf8")) as { cases: Case[] }).cases;
});
afterAll(() => model?.dispose());

const byName = (n: string) => cases.find((c) => c.name === n) as Case;
/** A stand-in decode that makes token boundaries visible: [286, 174] -> "<286><174>". */
const decode = (ids: number[]) => ids.map((i) => `<${i}>`).join("");

describe("generate", () => {
  it("greedy reproduces HF generate token for token, batched with left padding and one at a time", async () => {
    // The reference ran with EOS suppressed, so EOS is switched off here too.
    const prompts = cases.map((c) => c.prompt_ids);
    const opts = { maxNewTokens: 40, eosTokenIds: [] as number[], returnLogits: true };
    const batched = await generate(model, prompts, opts);
    for (const [i, c] of cases.entries()) {
      expect(batched[i]?.tokens, c.name).toEqual(c.generated_ids);
      expect(batched[i]?.finishReason).toBe("length");
      const [alone] = await generate(model, [c.prompt_ids], opts);
      expect(alone?.tokens, c.name).toEqual(c.generated_ids);
      // Padded rows see the same numbers: masked slots add exact zeros; only accumulation order may differ.
      for (let s = 0; s < 40; s++) {
        expect(
          maxAbsDiff(batched[i]?.logits?.[s] as Float32Array, alone?.logits?.[s] as Float32Array),
        ).toBeLessThan(1e-4);
      }
    }
  });

  it("KV-cache decoding equals a fresh full forward at every step", async () => {
    const c = byName("prompt_c");
    const [r] = await generate(model, [c.prompt_ids], {
      maxNewTokens: 12,
      eosTokenIds: [],
      returnLogits: true,
    });
    let worst = 0;
    for (let s = 0; s < 12; s++) {
      const ids = [...c.prompt_ids, ...(r?.tokens.slice(0, s) ?? [])];
      const { logits } = model.forward([ids], { logits: "last" });
      const full = logits?.dataSync() as Float32Array;
      logits?.dispose();
      worst = Math.max(worst, maxAbsDiff(full, r?.logits?.[s] as Float32Array));
    }
    // fp32: the cached path multiplies [1, S] rows against the cache instead of the full [S, S] products, so
    // sums are accumulated in a different order; logits here are O(1), so 1e-4 is ~100x float32 rounding.
    expect(worst).toBeLessThan(1e-4);
    // returnLogits gave one row per generated step (a missing row would make `worst` NaN, failing above).
    expect(r?.logits?.length).toBeGreaterThanOrEqual(12);
  });

  it("sampling is reproducible with a seed; top-k = 1 equals greedy", async () => {
    const prompts = cases.map((c) => c.prompt_ids);
    const o = { maxNewTokens: 10, eosTokenIds: [] as number[], temperature: 1.3, topP: 0.95, topK: 50 };
    const a = await generate(model, prompts, { ...o, seed: 7 });
    const b = await generate(model, prompts, { ...o, seed: 7 });
    const c = await generate(model, prompts, { ...o, seed: 8 });
    expect(a.map((r) => r.tokens)).toEqual(b.map((r) => r.tokens));
    expect(a.map((r) => r.tokens)).not.toEqual(c.map((r) => r.tokens));
    // Per-prompt RNG streams: one prompt alone draws what it drew in the batch.
    const alone = await generate(model, [prompts[0] as number[], prompts[1] as number[]], {
      ...o,
      seed: 7,
      batchSize: 1,
    });
    expect(alone[0]?.tokens).toEqual(a[0]?.tokens);
    const k1 = await generate(model, prompts, {
      maxNewTokens: 10,
      eosTokenIds: [],
      temperature: 1,
      topK: 1,
      seed: 3,
    });
    expect(k1.map((r) => r.tokens)).toEqual(cases.map((x) => x.generated_ids.slice(0, 10)));
  });

  it("stops on stop token ids, on stop strings (text cut before the string) and at maxNewTokens", async () => {
    const a = byName("prompt_a");
    const c = byName("prompt_c");
    const [tok] = await generate(model, [a.prompt_ids], {
      maxNewTokens: 10,
      eosTokenIds: [],
      stopTokenIds: [174],
    });
    expect(tok).toMatchObject({
      tokens: [286, 174],
      finishReason: "stop",
      stoppedBy: { kind: "token", value: 174 },
    });

    // "174><17" spans the 2nd and 3rd generated tokens: the 3rd completes it.
    const [str] = await generate(model, [a.prompt_ids], {
      maxNewTokens: 10,
      eosTokenIds: [],
      stopStrings: ["zzz", "174><17"],
      decode,
    });
    expect(str).toMatchObject({ tokens: [286, 174, 174], finishReason: "stop", text: "<286><" });
    expect(str?.stoppedBy).toEqual({ kind: "string", value: "174><17" });

    const [len] = await generate(model, [c.prompt_ids], { maxNewTokens: 5, eosTokenIds: [], decode });
    expect(len).toMatchObject({ tokens: c.generated_ids.slice(0, 5), finishReason: "length" });
    expect(len?.text).toBe(decode(c.generated_ids.slice(0, 5)));

    // One row stops early and leaves the batch; the other goes on unchanged.
    const streamed: [number, number][] = [];
    const both = await generate(model, [a.prompt_ids, c.prompt_ids], {
      maxNewTokens: 40,
      eosTokenIds: [],
      stopTokenIds: [174],
      onToken: (seq, id) => streamed.push([seq, id]),
    });
    expect(both[0]?.tokens).toEqual([286, 174]);
    expect(both[1]?.tokens).toEqual(c.generated_ids);
    expect(streamed.filter(([s]) => s === 1).map(([, id]) => id)).toEqual(c.generated_ids);
    expect(streamed.filter(([s]) => s === 0).map(([, id]) => id)).toEqual([286, 174]);

    await expect(generate(model, [a.prompt_ids], { maxNewTokens: 3, stopStrings: ["x"] })).rejects.toThrow(
      HippoError,
    );
    await expect(generate(model, [[1, 512]], { maxNewTokens: 3 })).rejects.toThrow(/prompts\[0\]\[1\]/);
  });

  it("stops at the config's EOS ids (a list) and stays within maxLength", async () => {
    const cfg = { ...model.config, eos_token_id: [] as number[] };
    const m = createRandomModel({ ...cfg, max_position_embeddings: 20 }, { seed: 11 });
    try {
      const prompt = [1, 5, 9, 33];
      const [free] = await generate(m, [prompt], { maxNewTokens: 12, eosTokenIds: [] });
      const toks = free?.tokens ?? [];
      const k = toks.findIndex((t, i) => i >= 1 && !toks.slice(0, i).includes(t));
      expect(k).toBeGreaterThan(0);
      const eosId = toks[k] as number;
      const other = [...Array(512).keys()].find((i) => !toks.includes(i)) as number;
      const m2 = createRandomModel({ ...cfg, eos_token_id: [other, eosId] }, { seed: 11 });
      try {
        const [stopped] = await generate(m2, [prompt], { maxNewTokens: 12 });
        expect(stopped).toMatchObject({ tokens: toks.slice(0, k + 1), finishReason: "stop" });
        expect(stopped?.stoppedBy).toEqual({ kind: "eos", value: eosId });
      } finally {
        m2.dispose();
      }
      // max_position_embeddings 20, prompt 4: at most 16 new tokens.
      const [capped] = await generate(m, [prompt], { maxNewTokens: 100, eosTokenIds: [] });
      expect(capped?.tokens.length).toBe(16);
      expect(capped?.finishReason).toBe("length");
    } finally {
      m.dispose();
    }
  });

  it("implements GenerativeModel, aborts, and leaks no tensors", async () => {
    const gm = asGenerativeModel(model, { name: "tiny", decode, eosTokenIds: [] });
    expect(gm.name).toBe("tiny");
    expect(gm.maxLength).toBe(128);
    const before = tf.memory().numTensors;
    const prompts = cases.map((c) => c.prompt_ids);
    const out = await gm.generate(prompts, { maxNewTokens: 6 });
    expect(out.map((r) => r.tokens)).toEqual(cases.map((c) => c.generated_ids.slice(0, 6)));
    await gm.generate(prompts, {
      maxNewTokens: 6,
      temperature: 0.8,
      topK: 20,
      topP: 0.9,
      seed: 1,
      stopTokenIds: [174],
    });
    await gm.generate(prompts, { maxNewTokens: 6, stopStrings: ["<1"] });
    const ctl = new AbortController();
    const pending = gm.generate(prompts, {
      maxNewTokens: 30,
      signal: ctl.signal,
      onToken: (_s, _id) => ctl.abort(),
    });
    await expect(pending).rejects.toMatchObject({ code: "ABORTED" });
    expect(tf.memory().numTensors).toBe(before);
  });
});
