import type { HfTokenizer } from "@hippocrates/tokenizer";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type HippoServer } from "../src/serve/server.js";
import { scorerFromScoringModel } from "../src/serve/types.js";
import { makeTempDir, removeTempDir } from "./helpers/cli.js";
import { raw } from "./helpers/http.js";
import { miniatureTokenizer, openaiClient, serveToy } from "./helpers/serve.js";
import { createToyModel, logSoftmax, toyLogits } from "./helpers/toy-model.js";

let dir: string;
let tok: HfTokenizer;
let hippo: HippoServer;
let port: number;
let base: string;
let client: OpenAI;
let toy: ReturnType<typeof createToyModel>;

const PROMPT = "Question: Which drug is used to treat the fever?\nAnswer:";

beforeAll(async () => {
  dir = await makeTempDir("serve");
  tok = await miniatureTokenizer(dir, [PROMPT, "fever drug"]);
  ({ toy, server: hippo, port, client } = await serveToy(tok));
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await hippo?.close();
  await removeTempDir(dir);
});

/** Raw JSON POST (for bodies the SDK will not send). */
const post = (path: string, body: string | Buffer) =>
  raw(port, { path, headers: { "content-type": "application/json" }, body });

/** A greedy completion of PROMPT through the openai client. */
const greedyCompletion = (max_tokens: number) =>
  client.completions.create({ model: "toy", prompt: PROMPT, max_tokens, temperature: 0 });

async function greedy(ids: number[], n: number): Promise<number[]> {
  const [r] = await toy.model.generator.generate([ids], {
    maxNewTokens: n,
    temperature: 0,
    stopTokenIds: [tok.eosTokenId as number],
  });
  return r?.tokens ?? [];
}

describe("OpenAI-compatible server (official openai client over loopback)", () => {
  it("lists the model", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual(["toy"]);
  });

  it("completes a string prompt greedily, as the model generates", async () => {
    const r = await greedyCompletion(6);
    const ids = await tok.encode(PROMPT);
    const expected = (await greedy(ids, 6)).filter((t) => t !== tok.eosTokenId);
    const full = await tok.decode([...ids, ...expected]);
    expect(r.choices[0]?.text).toBe(full.slice((await tok.decode(ids)).length));
    expect(r.usage?.prompt_tokens).toBe(ids.length);
    expect(r.object).toBe("text_completion");
  });

  it("echo + logprobs with max_tokens 0 returns the prompt's per-token log-probs (first null)", async () => {
    const r = await client.completions.create({
      model: "toy",
      prompt: PROMPT,
      max_tokens: 0,
      echo: true,
      logprobs: 3,
      temperature: 0,
    });
    const choice = r.choices[0];
    const lp = choice?.logprobs;
    const ids = await tok.encode(PROMPT);
    expect(choice?.text).toBe(PROMPT);
    expect(lp?.tokens?.join("")).toBe(PROMPT);
    expect(lp?.tokens).toHaveLength(ids.length);
    expect(lp?.token_logprobs?.[0]).toBeNull();
    // Each value recomputed from the toy model's definition; tolerance is float64 round-off only.
    for (let i = 1; i < ids.length; i++) {
      const expected = logSoftmax(toyLogits(ids[i - 1] as number, tok.vocabSize))[ids[i] as number] as number;
      expect(lp?.token_logprobs?.[i]).toBeCloseTo(expected, 10);
      expect(Object.keys(lp?.top_logprobs?.[i] ?? {})).toHaveLength(3);
    }
    // text_offset: where each token starts in the echoed text.
    lp?.text_offset?.forEach((off, i) => {
      expect(PROMPT.slice(off).startsWith(lp.tokens?.[i] ?? "\u0000")).toBe(true);
    });
  });

  it("scores token-id prompts in a batch (lm-evaluation-harness style) and agrees with logLikelihood", async () => {
    const ctx = await tok.encode("Question: Which drug", { addSpecialTokens: false });
    const cont = await tok.encode("fever drug", { addSpecialTokens: false });
    const r = await client.completions.create({
      model: "toy",
      prompt: [[...ctx, ...cont], ctx],
      max_tokens: 0,
      echo: true,
      logprobs: 0,
    });
    expect(r.choices).toHaveLength(2);
    const lps = r.choices[0]?.logprobs?.token_logprobs as number[];
    const sum = lps.slice(ctx.length).reduce((a, b) => a + b, 0);
    const [ref] = await toy.scoring.logLikelihood([{ context: ctx, continuation: cont }]);
    expect(sum).toBeCloseTo(ref?.logprob as number, 10);
    // The generic adapter (one logLikelihood request per token) gives the same numbers.
    const [viaAdapter] = await scorerFromScoringModel(toy.scoring).tokenLogprobs([[...ctx, ...cont]], 1);
    viaAdapter?.logprobs.forEach((v, i) => {
      if (i === 0) expect(v).toBeNull();
      else expect(v).toBeCloseTo(lps[i] as number, 10);
    });
  });

  it("chat completions use the tokenizer's chat template", async () => {
    const messages = [{ role: "user" as const, content: PROMPT }];
    const r = await client.chat.completions.create({ model: "toy", messages, max_tokens: 5, temperature: 0 });
    const ids = await tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    });
    const gen = (await greedy(ids, 5)).filter((t) => t !== tok.eosTokenId);
    const expected = (await tok.decode([...ids, ...gen])).slice((await tok.decode(ids)).length);
    expect(r.choices[0]?.message.content).toBe(expected);
    expect(r.choices[0]?.message.role).toBe("assistant");
  });

  it("streams completions and chat over SSE; the deltas add up to the non-streamed answer", async () => {
    const plain = await greedyCompletion(8);
    const stream = await client.completions.create({
      model: "toy",
      prompt: PROMPT,
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    let text = "";
    let chunks = 0;
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      chunks++;
    }
    expect(text).toBe(plain.choices[0]?.text);
    expect(chunks).toBeGreaterThan(2);
    expect(finish).toBe(plain.choices[0]?.finish_reason);

    const chatStream = await client.chat.completions.create({
      model: "toy",
      messages: [{ role: "user", content: PROMPT }],
      max_tokens: 6,
      temperature: 0,
      stream: true,
    });
    let content = "";
    for await (const chunk of chatStream) content += chunk.choices[0]?.delta?.content ?? "";
    const chatPlain = await client.chat.completions.create({
      model: "toy",
      messages: [{ role: "user", content: PROMPT }],
      max_tokens: 6,
      temperature: 0,
    });
    expect(content).toBe(chatPlain.choices[0]?.message.content);
  });

  it("seeded sampling is reproducible and stop strings cut the text", async () => {
    const sample = () =>
      client.completions.create({ model: "toy", prompt: PROMPT, max_tokens: 10, temperature: 1, seed: 5 });
    const a = await sample();
    const b = await sample();
    expect(a.choices[0]?.text).toBe(b.choices[0]?.text);
    const full = (await greedyCompletion(10)).choices[0]?.text ?? "";
    const word = full.trim().split(/\s+/)[1];
    if (word) {
      const cut = await client.completions.create({
        model: "toy",
        prompt: PROMPT,
        max_tokens: 10,
        temperature: 0,
        stop: [word],
      });
      expect(cut.choices[0]?.text).toBe(full.slice(0, full.indexOf(word)));
      expect(cut.choices[0]?.finish_reason).toBe("stop");
    }
  });

  it("batches concurrent requests into one model call", async () => {
    // A model that takes 20 ms per token: requests arriving while one batch runs wait and go together.
    const slow = createToyModel(tok, { delayMs: 20, maxLength: 128 });
    const s = createServer(slow.model);
    const { port } = await s.listen(0);
    const c = openaiClient(port, "x");
    try {
      const rs = await Promise.all(
        Array.from({ length: 12 }, () =>
          c.completions.create({ model: "toy", prompt: PROMPT, max_tokens: 4, temperature: 0 }),
        ),
      );
      // Batched answers equal the one-at-a-time answer.
      const alone = await greedyCompletion(4);
      expect(new Set(rs.map((r) => r.choices[0]?.text))).toEqual(new Set([alone.choices[0]?.text]));
      expect(Math.max(...slow.calls)).toBeGreaterThan(1);
      expect(s.queue.stats.maxBatchSeen).toBeGreaterThan(1);
      expect(s.queue.stats.batches).toBeLessThan(12);
    } finally {
      await s.close();
    }
  });

  it("bad requests get 4xx in OpenAI's error shape, and the server keeps serving", async () => {
    const malformed = await post("/v1/completions", '{"prompt": "x", ');
    expect(malformed.status).toBe(400);
    expect(malformed.json).toMatchObject({ error: { type: "invalid_request_error", code: "invalid_json" } });
    expect(Object.keys((malformed.json as { error: object }).error).sort()).toEqual([
      "code",
      "message",
      "param",
      "type",
    ]);

    const huge = await post(
      "/v1/completions",
      Buffer.from(JSON.stringify({ prompt: "x".repeat(10 * 1024 * 1024) })),
    );
    expect(huge.status).toBe(413);
    expect(huge.json).toMatchObject({ error: { code: "request_too_large" } });

    const tooMany = await client.completions
      .create({ model: "toy", prompt: PROMPT, max_tokens: 100_000 })
      .catch((e: unknown) => e);
    expect(tooMany).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tooMany as InstanceType<typeof OpenAI.BadRequestError>).param).toBe("max_tokens");

    const longPrompt = await client.completions
      .create({ model: "toy", prompt: "fever ".repeat(200), max_tokens: 1 })
      .catch((e: unknown) => e);
    expect((longPrompt as { status?: number }).status).toBe(400);
    expect((longPrompt as { code?: string }).code).toBe("context_length_exceeded");

    const wrongType = await post("/v1/completions", JSON.stringify({ prompt: PROMPT, max_tokens: "ten" }));
    expect(wrongType.status).toBe(400);
    expect(wrongType.json).toMatchObject({ error: { param: "max_tokens" } });

    const noModel = await client.completions
      .create({ model: "gpt-9", prompt: PROMPT, max_tokens: 1 })
      .catch((e: unknown) => e);
    expect((noModel as { status?: number }).status).toBe(404);

    const missing = await fetch(`${base}/v1/nothing`);
    expect(missing.status).toBe(404);

    const ok = await greedyCompletion(2);
    expect(ok.choices[0]?.text.length).toBeGreaterThan(0);
  });

  it("shuts down gracefully: in-flight requests finish, new ones are refused", async () => {
    const slow = createToyModel(tok, { delayMs: 20, maxLength: 128 });
    const s = createServer(slow.model);
    const { port } = await s.listen(0);
    const c = openaiClient(port, "x");
    const inflight = c.completions.create({ model: "toy", prompt: PROMPT, max_tokens: 20, temperature: 0 });
    // Close once the request is being generated (not after a fixed 100 ms, which a loaded machine can spend
    // before the request even arrives, so that it is refused instead of finished).
    while (slow.calls.length === 0) await new Promise((r) => setTimeout(r, 5));
    const closed = s.close();
    const after = await fetch(`http://127.0.0.1:${port}/v1/models`).catch((e: unknown) => e);
    expect(after).toBeInstanceOf(Error);
    const r = await inflight;
    // It ran to its end, not cut off by the shutdown: a real finish reason and its tokens.
    expect(["length", "stop"]).toContain(r.choices[0]?.finish_reason);
    expect(r.usage?.completion_tokens).toBeGreaterThan(0);
    await closed;
  });
});
