/**
 * The server with the real TensorFlow.js model (a random Llama of the miniature's shape, the miniature's
 * tokenizer): what the openai client gets back equals what the model package computes directly, and the
 * eval package's OpenAI-endpoint backend scores through the server what the local model scores.
 */
import { join } from "node:path";
import { createOpenAICompletionsModel } from "@hippocrates/eval";
import { asScoringModel, loadModel } from "@hippocrates/model";
import type OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadServeModel } from "../src/commands/serve.js";
import { prepareMiniature } from "../src/miniature/prepare.js";
import { createServer, type HippoServer } from "../src/serve/server.js";
import { LLAMA2_TOKENIZER, makeTempDir, removeTempDir } from "./helpers/cli.js";
import { openaiClient } from "./helpers/serve.js";

let dir: string;
let hippo: HippoServer;
let client: OpenAI;
let base: string;
let loaded: Awaited<ReturnType<typeof loadServeModel>>;
const PROMPT = "Question: Which drug is used to treat the disease?\nAnswer:";

beforeAll(async () => {
  dir = await makeTempDir("serve-real");
  await prepareMiniature(dir, { diseases: 6 });
  loaded = await loadServeModel(join(dir, "base-model"), { tokenizer: join(dir, "tokenizer"), name: "mini" });
  hippo = createServer(loaded.model);
  const { port } = await hippo.listen(0);
  base = `http://127.0.0.1:${port}/v1`;
  client = openaiClient(port);
});

afterAll(async () => {
  await hippo?.close();
  loaded?.dispose();
  await removeTempDir(dir);
});

describe("server on the real model", () => {
  it("n choices: seeded samples that differ from each other and repeat with the same seed; greedy ones agree", async () => {
    const ask = (seed: number) =>
      client.completions.create({
        model: "mini",
        prompt: PROMPT,
        max_tokens: 6,
        temperature: 1.5,
        n: 3,
        seed,
      });
    const a = await ask(11);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const texts = a.choices.map((c) => c.text);
    expect(new Set(texts).size).toBeGreaterThan(1);
    expect((await ask(11)).choices.map((c) => c.text)).toEqual(texts);
    // Choice j samples with seed + j: choice 0 of seed 12 is choice 1 of seed 11.
    expect((await ask(12)).choices[0]?.text).toBe(texts[1]);
    // Prompt tokens counted once, completion tokens summed over the choices.
    const promptTokens = (await loaded.model.tokenizer.encode(PROMPT)).length;
    expect(a.usage?.prompt_tokens).toBe(promptTokens);
    expect(a.usage?.completion_tokens).toBeGreaterThanOrEqual(3);

    const two = await client.completions.create({
      model: "mini",
      prompt: [PROMPT, "Question: Which finding is typical?\nAnswer:"],
      max_tokens: 3,
      temperature: 0,
      n: 2,
    });
    expect(two.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(two.choices[0]?.text).toBe(two.choices[1]?.text); // greedy: the n choices agree
    expect(two.choices[2]?.text).toBe(two.choices[3]?.text);

    const chat = await client.chat.completions.create({
      model: "mini",
      messages: [{ role: "user", content: "Which drug treats the disease?" }],
      max_tokens: 4,
      n: 2,
      seed: 3,
    });
    expect(chat.choices.map((c) => c.index)).toEqual([0, 1]);

    await expect(
      client.completions.create({ model: "mini", prompt: PROMPT, max_tokens: 2, n: 2, stream: true }),
    ).rejects.toMatchObject({ status: 400, param: "n" });
    await expect(
      client.completions.create({ model: "mini", prompt: PROMPT, max_tokens: 2, n: 17 }),
    ).rejects.toMatchObject({ status: 400, param: "n" });
  });

  it("greedy completion equals the model's own greedy generation", async () => {
    const r = await client.completions.create({
      model: "mini",
      prompt: PROMPT,
      max_tokens: 5,
      temperature: 0,
    });
    const tok = loaded.model.tokenizer;
    const ids = await tok.encode(PROMPT);
    const [g] = await loaded.model.generator.generate([ids], {
      maxNewTokens: 5,
      temperature: 0,
      stopTokenIds: [tok.eosTokenId as number],
    });
    const gen = (g?.tokens ?? []).filter((t) => t !== tok.eosTokenId);
    const expected = (await tok.decode([...ids, ...gen])).slice((await tok.decode(ids)).length);
    expect(r.choices[0]?.text).toBe(expected);
    expect(r.usage?.completion_tokens).toBe(g?.tokens.length);
  });

  it("echo + logprobs agree with the model package's log-likelihood scoring, and the eval endpoint backend matches the local one", async () => {
    const tok = loaded.model.tokenizer;
    const ctx = await tok.encode("Question: Which drug is used to treat the disease?\nAnswer:", {
      addSpecialTokens: false,
    });
    const conts = [
      await tok.encode("fever", { addSpecialTokens: false }),
      await tok.encode("Question", { addSpecialTokens: false }),
    ];
    const lm = await loadModel(join(dir, "base-model"));
    const local = asScoringModel(lm, { name: "local" });
    const requests = conts.map((c) => ({ context: ctx, continuation: c }));
    const expected = await local.logLikelihood(requests);
    lm.dispose();
    // Raw protocol: sum of token_logprobs over the continuation tokens.
    const r = await client.completions.create({
      model: "mini",
      prompt: [[...ctx, ...(conts[0] as number[])]],
      max_tokens: 0,
      echo: true,
      logprobs: 1,
    });
    const lps = r.choices[0]?.logprobs?.token_logprobs as number[];
    const sum = lps.slice(ctx.length).reduce((a, b) => a + b, 0);
    // float32 forward passes of different shapes (one sequence vs shared-context batches): 1e-4 absolute.
    expect(Math.abs(sum - (expected[0]?.logprob as number))).toBeLessThan(1e-4);
    // The eval package's endpoint backend through this server.
    const remote = createOpenAICompletionsModel({
      baseUrl: base,
      model: "mini",
      maxLength: loaded.model.maxLength,
    });
    const got = await remote.logLikelihood(requests);
    got.forEach((g, i) => {
      expect(Math.abs(g.logprob - (expected[i]?.logprob as number))).toBeLessThan(1e-4);
      expect(g.isGreedy).toBe(expected[i]?.isGreedy);
    });
  });

  it("chat and streaming work on the real model", async () => {
    const chat = await client.chat.completions.create({
      model: "mini",
      messages: [{ role: "user", content: PROMPT }],
      max_tokens: 4,
      temperature: 0,
    });
    expect(typeof chat.choices[0]?.message.content).toBe("string");
    const stream = await client.completions.create({
      model: "mini",
      prompt: PROMPT,
      max_tokens: 6,
      temperature: 0,
      stream: true,
    });
    let text = "";
    for await (const c of stream) text += c.choices[0]?.text ?? "";
    const plain = await client.completions.create({
      model: "mini",
      prompt: PROMPT,
      max_tokens: 6,
      temperature: 0,
    });
    expect(text).toBe(plain.choices[0]?.text);
  });

  it("refuses at load a tokenizer whose vocabulary does not fit the model's vocab_size", async () => {
    // Llama-2's 32000 tokens against the miniature model's small vocabulary: every request would fail.
    const error = await loadServeModel(join(dir, "base-model"), { tokenizer: LLAMA2_TOKENIZER }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/32000 tokens/);
    expect((error as Error).message).toMatch(/vocab_size/);
    expect((error as Error).message).toContain(join(dir, "base-model", "config.json"));
  });
});
