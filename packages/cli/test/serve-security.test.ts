/**
 * `hippo serve` exposed to careless and hostile callers (issue 14, "The server trusts every caller"): one test
 * per failure found there. The model is the deterministic toy (test/helpers/toy-model.ts), slowed down per
 * token where a test needs work to be in flight; nothing here measures time.
 */
import { HippoError } from "@hippocrates/core";
import type { HfTokenizer } from "@hippocrates/tokenizer";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createServer, type HippoServer, type ServeOptions } from "../src/serve/server.js";
import { makeTempDir, removeTempDir } from "./helpers/cli.js";
import { completionsRequest, declaredOnly, postJson, raw, streamBody, waitFor } from "./helpers/http.js";
import { miniatureTokenizer, openaiClient, serveToy } from "./helpers/serve.js";
import { createToyModel } from "./helpers/toy-model.js";

const PROMPT = "Question: Which drug is used to treat the fever?\nAnswer:";
const KEY = "sk-hippo-test-0123456789";

let dir: string;
let tok: HfTokenizer;
let toy: ReturnType<typeof createToyModel>;
let open: HippoServer;
let port: number;
let client: OpenAI;
const started: HippoServer[] = [];

beforeAll(async () => {
  dir = await makeTempDir("serve-sec");
  tok = await miniatureTokenizer(dir, [PROMPT, "fever drug"]);
  ({ toy, server: open, port, client } = await serveToy(tok));
});

afterAll(async () => {
  for (const s of started) await s.close();
  await open?.close();
  await removeTempDir(dir);
});

/** A server on its own loopback port, closed after the file. */
async function start(
  model: ReturnType<typeof createToyModel>["model"],
  options: ServeOptions = {},
): Promise<{ server: HippoServer; port: number; lines: string[] }> {
  const lines: string[] = [];
  const server = createServer(model, { log: (l) => lines.push(l), ...options });
  started.push(server);
  return { server, port: (await server.listen(0)).port, lines };
}

function errorOf(r: { json: unknown }) {
  return (r.json as { error: { message: string; type: string; param: string | null; code: string | null } })
    .error;
}

describe("hippo serve: who may use it", () => {
  it("answers 401 in OpenAI's error shape without the API key or with a wrong one, and serves the key's holder", async () => {
    const { port: p } = await start(toy.model, { apiKey: KEY });
    const none = await raw(p, { method: "GET", path: "/v1/models" });
    expect(none.status).toBe(401);
    expect(none.headers["www-authenticate"]).toBe("Bearer");
    expect(Object.keys(errorOf(none)).sort()).toEqual(["code", "message", "param", "type"]);
    expect(errorOf(none)).toMatchObject({ type: "invalid_request_error", code: "invalid_api_key" });
    const post = await postJson(p, "/v1/completions", { prompt: PROMPT, max_tokens: 2 });
    expect(post.status).toBe(401);
    const wrong = await openaiClient(p, `${KEY}x`)
      .completions.create({ model: "toy", prompt: PROMPT, max_tokens: 2 })
      .catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError);
    const c = openaiClient(p, KEY);
    expect((await c.models.list()).data.map((m) => m.id)).toEqual(["toy"]);
    const ok = await c.completions.create({ model: "toy", prompt: PROMPT, max_tokens: 2, temperature: 0 });
    expect(ok.choices[0]?.text.length).toBeGreaterThan(0);
    // The health probe stays open (load balancers), and says nothing about the model.
    const health = await raw(p, { method: "GET", path: "/health" });
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: "ok" });
  });

  it("refuses to listen on a non-loopback address without an API key", async () => {
    const s = createServer(toy.model);
    await expect(s.listen(0, "0.0.0.0")).rejects.toThrow(/API key/);
    expect(s.server.listening).toBe(false);
    const keyed = createServer(toy.model, { apiKey: KEY });
    started.push(keyed);
    const addr = await keyed.listen(0, "0.0.0.0");
    expect(addr.address).toBe("0.0.0.0");
  });

  it("refuses a Host header that is not a loopback name (DNS rebinding) with 403, before any work", async () => {
    const calls = toy.calls.length;
    for (const host of [`evil.example:${port}`, "evil.example", `127.0.0.1.evil.example:${port}`]) {
      const r = await raw(port, {
        path: "/v1/completions",
        headers: { host, "content-type": "application/json" },
        body: JSON.stringify({ prompt: PROMPT, max_tokens: 2 }),
      });
      expect(r.status).toBe(403);
      expect(errorOf(r)).toMatchObject({ code: "invalid_host" });
      expect((await raw(port, { method: "GET", path: "/v1/models", headers: { host } })).status).toBe(403);
    }
    expect(toy.calls.length).toBe(calls);
    for (const host of [
      `localhost:${port}`,
      `127.0.0.1:${port}`,
      `[::1]:${port}`,
      "LOCALHOST",
      "app.localhost",
    ]) {
      expect((await raw(port, { method: "GET", path: "/v1/models", headers: { host } })).status).toBe(200);
    }
  });

  it("a cross-site text/plain POST (what an HTML form or a no-cors fetch can send) gets 415 and queues nothing", async () => {
    const calls = toy.calls.length;
    const body = JSON.stringify({ prompt: PROMPT, max_tokens: 2 });
    for (const type of [
      "text/plain",
      "application/x-www-form-urlencoded",
      "multipart/form-data; boundary=x",
    ]) {
      const r = await raw(port, {
        path: "/v1/completions",
        headers: { "content-type": type, origin: "https://evil.example" },
        body,
      });
      expect(r.status).toBe(415);
      expect(errorOf(r)).toMatchObject({ code: "unsupported_media_type" });
      // No CORS grant: a page could not read the answer even if it got one.
      expect(r.headers["access-control-allow-origin"]).toBeUndefined();
    }
    expect((await raw(port, { path: "/v1/completions", body })).status).toBe(415);
    expect(toy.calls.length).toBe(calls);
    const charset = await postJson(port, "/v1/completions", body, {
      "content-type": "application/json; charset=utf-8",
    });
    expect(charset.status).toBe(200);
  });
});

describe("hippo serve: how much one caller may ask", () => {
  it("refuses more choices (prompts x n) than maxChoices with a 400 naming the parameter, before any work", async () => {
    const calls = toy.calls.length;
    // The 3 KB request: 200 prompts x n 16 = 3,200 generations.
    const amp = await postJson(port, "/v1/completions", {
      prompt: Array.from({ length: 200 }, () => "fever"),
      n: 16,
      max_tokens: 16,
    });
    expect(amp.status).toBe(400);
    expect(errorOf(amp)).toMatchObject({ param: "n", code: "too_many_choices" });
    expect(errorOf(amp).message).toMatch(/3200 choices .*at most 64/);
    const prompts = await postJson(port, "/v1/completions", {
      prompt: Array.from({ length: 65 }, () => "fever"),
      max_tokens: 1,
    });
    expect(prompts.status).toBe(400);
    expect(errorOf(prompts).param).toBe("prompt");
    expect(toy.calls.length).toBe(calls);
  });

  it("answers 429 with Retry-After when the queue is full, and admits the request once there is room", async () => {
    const slow = createToyModel(tok, { delayMs: 20, maxLength: 128 });
    const { server, port: p } = await start(slow.model, { maxChoices: 4, maxQueue: 4 });
    const c = openaiClient(p, "x");
    const first = c.completions.create({
      model: "toy",
      prompt: PROMPT,
      max_tokens: 50,
      temperature: 0,
      n: 4,
    });
    await waitFor(() => server.queue.size > 0, "the first request to be queued");
    const full = await postJson(p, "/v1/completions", { prompt: PROMPT, max_tokens: 2 });
    expect(full.status).toBe(429);
    expect(full.headers["retry-after"]).toMatch(/^[1-9][0-9]*$/);
    expect(errorOf(full)).toMatchObject({ code: "rate_limit_exceeded" });
    expect((await first).choices).toHaveLength(4);
    const later = await postJson(p, "/v1/completions", { prompt: PROMPT, max_tokens: 2 });
    expect(later.status).toBe(200);
  });

  it("cancels the queued and running work of a client that disconnects: the model stops and the next request runs at once", async () => {
    const slow = createToyModel(tok, { delayMs: 10, maxLength: 1024 });
    const { server, port: p, lines } = await start(slow.model, { maxBatch: 8 });
    // 4 prompts x n 16 = 64 generations of 300 tokens: 8 batches of 3 s each at 10 ms a token.
    const amp = completionsRequest(p);
    amp.on("error", () => {});
    amp.end(
      JSON.stringify({ prompt: [PROMPT, PROMPT, PROMPT, PROMPT], n: 16, max_tokens: 300, temperature: 0 }),
    );
    await waitFor(() => (slow.steps[0] ?? 0) > 0, "the first batch to start");
    amp.destroy();
    await waitFor(() => lines.some((l) => l.includes("disconnected")), "the disconnect to be logged");
    const c = openaiClient(p, "x");
    const next = await c.completions.create({ model: "toy", prompt: PROMPT, max_tokens: 3, temperature: 0 });
    expect(next.choices[0]?.finish_reason).toBe("length");
    await server.queue.idle();
    // The running batch was cut short, none of the 7 queued ones ran, and the next request ran alone.
    expect(slow.calls).toEqual([8, 1]);
    expect(slow.steps[0]).toBeLessThan(300);
    expect(slow.steps[1]).toBe(3);
    // One log line for the disconnect, naming what was cancelled; no stack trace.
    const gone = lines.filter((l) => l.includes("disconnected"));
    expect(gone).toHaveLength(1);
    expect(gone[0]).toMatch(
      /POST \/v1\/completions client disconnected after \d+ ms; cancelled its work: 56 queued and 8 running/,
    );
    expect(lines.join("\n")).not.toMatch(/\n\s+at /);
  });

  it("logs one line, with no stack trace, when a streaming client disconnects", async () => {
    const slow = createToyModel(tok, { delayMs: 20, maxLength: 256 });
    const { server, port: p, lines } = await start(slow.model);
    await new Promise<void>((resolve, reject) => {
      const req = completionsRequest(p, {}, (res) => {
        res.once("data", () => {
          req.destroy();
          resolve();
        });
      });
      req.on("error", () => {});
      req.end(JSON.stringify({ prompt: PROMPT, max_tokens: 100, temperature: 0, stream: true }));
      setTimeout(() => reject(new Error("no stream data")), 30_000).unref();
    });
    await waitFor(() => lines.length > 0, "the request to be logged");
    await server.queue.idle();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^POST \/v1\/completions client disconnected after \d+ ms; cancelled its work: 0 queued and 1 running$/,
    );
    expect(slow.steps[0]).toBeLessThan(100);
  });
});

describe("hippo serve: request bodies", () => {
  it("answers 413 to a declared Content-Length over the limit from the headers, without reading the body", async () => {
    // 100 MB declared, not one byte sent: the answer can only come from the headers.
    const r = await declaredOnly(port, 100_000_000);
    expect(r.status).toBe(413);
    expect(errorOf(r)).toMatchObject({ code: "request_too_large" });
    expect(errorOf(r).message).toMatch(/100000000 bytes .*limit 1048576/);
  });

  it("with Expect: 100-continue, refuses an oversized body before the client sends it, and asks for an accepted one", async () => {
    const ask = (declared: number, body: string | undefined) =>
      new Promise<{ status: number; continued: boolean }>((resolve, reject) => {
        let continued = false;
        const req = completionsRequest(
          port,
          { "content-length": declared, expect: "100-continue" },
          (res) => {
            res.resume();
            res.on("end", () => {
              req.destroy();
              resolve({ status: res.statusCode ?? 0, continued });
            });
          },
        );
        req.on("continue", () => {
          continued = true;
          req.end(body);
        });
        req.on("error", reject);
        req.flushHeaders();
      });
    expect(await ask(100_000_000, undefined)).toEqual({ status: 413, continued: false });
    const small = JSON.stringify({ prompt: PROMPT, max_tokens: 1 });
    expect(await ask(Buffer.byteLength(small), small)).toEqual({ status: 200, continued: true });
  });

  it("answers 413 to an undeclared (chunked) 100 MB body once the bytes read pass the limit, without a connection reset", async () => {
    const r = await streamBody(port, 100_000_000);
    expect(r.reset).toBeUndefined();
    expect(r.response?.status).toBe(413);
    expect(errorOf(r.response as { json: unknown })).toMatchObject({ code: "request_too_large" });
    // It stopped early: the server answered long before the 100 MB were sent.
    expect(r.sent).toBeLessThan(50_000_000);
    // And keeps serving.
    const ok = await client.completions.create({ model: "toy", prompt: PROMPT, max_tokens: 1 });
    expect(ok.choices).toHaveLength(1);
  });
});

describe("hippo serve: options and parameters", () => {
  it("refuses nonsense options when the server is created (maxBatch 0 and others), naming the option", () => {
    const cases: [ServeOptions, string][] = [
      [{ maxBatch: 0 }, "maxBatch"],
      [{ maxBatch: -1 }, "maxBatch"],
      [{ maxBatch: 1.5 }, "maxBatch"],
      [{ maxBatch: Number.NaN }, "maxBatch"],
      [{ maxBodyBytes: 0 }, "maxBodyBytes"],
      [{ maxTokens: 0 }, "maxTokens"],
      [{ maxChoices: 0 }, "maxChoices"],
      [{ maxChoices: 16, maxQueue: 8 }, "maxQueue"],
      [{ defaultMaxTokens: 600 }, "defaultMaxTokens"],
      [{ apiKey: "" }, "apiKey"],
      [{ apiKey: "two words" }, "apiKey"],
    ];
    for (const [options, key] of cases) {
      let error: unknown;
      try {
        createServer(toy.model, options);
      } catch (e) {
        error = e;
      }
      expect(error, JSON.stringify(options)).toBeInstanceOf(HippoError);
      expect((error as HippoError).location.key).toBe(key);
    }
  });

  it("answers a chat prompt longer than the context with no max_tokens with 400 context_length_exceeded, streaming or not", async () => {
    const messages = [{ role: "user" as const, content: "fever ".repeat(300) }];
    const ids = await tok.encode(tok.applyChatTemplate(messages, { addGenerationPrompt: true }), {
      addSpecialTokens: false,
    });
    expect(ids.length).toBeGreaterThan(128);
    // vLLM's wording (vllm/entrypoints/openai/serving_engine.py at 0030b9ff, _validate_prompt_and_tokenize).
    const vllm = `This model's maximum context length is 128 tokens. However, you requested ${ids.length} tokens in the messages, Please reduce the length of the messages.`;
    for (const stream of [false, true]) {
      const e = await client.chat.completions
        .create({ model: "toy", messages, stream })
        .catch((x: unknown) => x);
      expect(e, `stream ${stream}`).toBeInstanceOf(OpenAI.BadRequestError);
      expect(e).toMatchObject({ status: 400, code: "context_length_exceeded", param: "messages" });
      expect((e as Error).message).toContain(vllm);
    }
    const withMax = await client.chat.completions
      .create({ model: "toy", messages: [{ role: "user", content: "fever ".repeat(80) }], max_tokens: 64 })
      .catch((x: unknown) => x);
    expect(withMax).toMatchObject({ status: 400, code: "context_length_exceeded", param: "messages" });
    expect((withMax as Error).message).toMatch(/in the messages, 64 in the completion\)/);
    const streamed = await client.completions
      .create({ model: "toy", prompt: "fever ".repeat(200), max_tokens: 1, stream: true })
      .catch((x: unknown) => x);
    expect(streamed).toMatchObject({ status: 400, code: "context_length_exceeded", param: "prompt" });
  });

  it('stop: "" is a 400 naming stop, streaming or not', async () => {
    for (const body of [
      { prompt: PROMPT, max_tokens: 2, stop: "" },
      { prompt: PROMPT, max_tokens: 2, stop: ["\n", ""] },
      { prompt: PROMPT, max_tokens: 2, stop: "", stream: true },
    ]) {
      const r = await postJson(port, "/v1/completions", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(errorOf(r).param).toMatch(/^stop/);
    }
    const chat = await postJson(port, "/v1/chat/completions", {
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 2,
      stop: "",
    });
    expect(chat.status).toBe(400);
    expect(errorOf(chat).param).toBe("stop");
  });

  it("temperature: 1e999 is a 400 that says a finite number in [0, 2] was expected", async () => {
    const r = await postJson(
      port,
      "/v1/completions",
      `{"prompt": "x", "max_tokens": 1, "temperature": 1e999}`,
    );
    expect(r.status).toBe(400);
    expect(errorOf(r).param).toBe("temperature");
    expect(errorOf(r).message).toBe("'temperature': expected a finite number in [0, 2], got Infinity");
  });

  it("every other bad parameter is a 400 naming it, never a 500", async () => {
    const completions: [Record<string, unknown>, string][] = [
      [{ prompt: PROMPT, temperature: 3 }, "temperature"],
      [{ prompt: PROMPT, temperature: -0.5 }, "temperature"],
      [{ prompt: PROMPT, top_p: 0 }, "top_p"],
      [{ prompt: PROMPT, n: 0 }, "n"],
      [{ prompt: PROMPT, n: 1.5 }, "n"],
      [{ prompt: PROMPT, logprobs: 21 }, "logprobs"],
      [{ prompt: PROMPT, seed: 1.5 }, "seed"],
      [{ prompt: PROMPT, seed: 2 ** 60 }, "seed"],
      [{ prompt: PROMPT, max_tokens: -1 }, "max_tokens"],
      [{ prompt: PROMPT, stop: ["a", "b", "c", "d", "e"] }, "stop"],
      [{ prompt: PROMPT, stream: "yes" }, "stream"],
      [{ prompt: [] }, "prompt"],
      [{ prompt: [[5, -1]] }, "prompt"],
      [{ prompt: [[5, 1e9]] }, "prompt"],
      [{}, "prompt"],
    ];
    // `param` is the parameter, or the path inside it (`prompt.0.1`), as OpenAI's `messages.[0].role`.
    const names = (param: string) => new RegExp(`^${param.split(".").join("\\.")}(\\.|$)`);
    for (const [body, param] of completions) {
      const r = await postJson(port, "/v1/completions", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(errorOf(r).param, JSON.stringify(body)).toMatch(names(param));
    }
    const chats: [Record<string, unknown>, string][] = [
      [{ messages: [] }, "messages"],
      [{ messages: [{ role: "tool", content: "x" }] }, "messages.0.role"],
      [{ messages: [{ role: "user", content: 5 }] }, "messages.0.content"],
      [{ messages: [{ role: "user", content: "x" }], logprobs: 3 }, "logprobs"],
      [{ messages: [{ role: "user", content: "x" }], max_completion_tokens: -2 }, "max_completion_tokens"],
      [
        { messages: [{ role: "user", content: "x" }], max_completion_tokens: 100_000 },
        "max_completion_tokens",
      ],
    ];
    for (const [body, param] of chats) {
      const r = await postJson(port, "/v1/chat/completions", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(errorOf(r).param, JSON.stringify(body)).toMatch(names(param));
    }
  });
});
