/**
 * `hippo serve`: an OpenAI-compatible HTTP server on node:http (no framework: three routes, and streaming and
 * body limits need the raw request and response anyway).
 *
 * Routes: GET /v1/models, POST /v1/completions (string or token-id prompts, `echo` + `logprobs` for
 * log-likelihood scoring as lm-evaluation-harness and the eval package's endpoint backend use it),
 * POST /v1/chat/completions (the model's chat template), both with `stream: true` over SSE, GET /health.
 */
import { randomBytes } from "node:crypto";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import {
  ApiError,
  type ChatRequest,
  type CompletionRequest,
  chatSchema,
  completionSchema,
  parseBody,
  promptList,
} from "./protocol.js";
import { BatchQueue, type SamplingOptions } from "./queue.js";
import { applyStop, decodePieces, type Pieces, promptPieces } from "./text.js";
import type { ServeModel } from "./types.js";

export interface ServeOptions {
  /** Largest request body in bytes (default 1 MiB); larger bodies get 413. */
  maxBodyBytes?: number;
  /** Largest `max_tokens` a request may ask for (default 512); more gets 400. */
  maxTokens?: number;
  /** Most requests per model call (default 8). */
  maxBatch?: number;
  /** Default `max_tokens` of /v1/completions when the request gives none (OpenAI: 16). */
  defaultMaxTokens?: number;
  log?: (line: string) => void;
}

export interface HippoServer {
  server: Server;
  queue: BatchQueue;
  listen(port?: number, host?: string): Promise<AddressInfo>;
  /** Graceful shutdown: stop accepting, finish in-flight requests, then close. */
  close(): Promise<void>;
}

const id = (prefix: string) => `${prefix}-${randomBytes(12).toString("hex")}`;
const now = () => Math.floor(Date.now() / 1000);

function sendJson(res: ServerResponse, status: number, body: unknown, close = false): void {
  if (res.headersSent) return;
  const data = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(data),
    ...(close ? { connection: "close" } : {}),
  });
  res.end(data);
}

/** Read the body up to `limit` bytes. Past the limit the rest is drained (so the client can read our 413). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    const chunks: Buffer[] = [];
    let size = 0;
    let tooBig = declared > limit;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) tooBig = true;
      if (!tooBig) chunks.push(chunk);
      // A client that keeps sending far past the limit is cut off.
      if (size > limit * 64) req.destroy();
    });
    req.on("end", () => {
      if (tooBig)
        reject(
          new ApiError(
            413,
            `request body too large: ${Math.max(size, declared)} bytes (limit ${limit})`,
            "invalid_request_error",
            null,
            "request_too_large",
          ),
        );
      else resolve(Buffer.concat(chunks));
    });
    req.on("error", reject);
  });
}

export function createServer(model: ServeModel, options: ServeOptions = {}): HippoServer {
  const maxBody = options.maxBodyBytes ?? 1 << 20;
  const maxTokens = options.maxTokens ?? 512;
  const defaultMaxTokens = options.defaultMaxTokens ?? 16;
  const log = options.log ?? (() => {});
  const queue = new BatchQueue(model, options.maxBatch ?? 8);
  const tok = model.tokenizer;
  const eos = tok.eosTokenId;
  let closing = false;
  let inFlight = 0;
  let drained: (() => void) | undefined;

  function checkModel(name: string | undefined): void {
    if (name !== undefined && name !== model.id) {
      throw new ApiError(
        404,
        `The model '${name}' does not exist (this server serves '${model.id}')`,
        "invalid_request_error",
        "model",
        "model_not_found",
      );
    }
  }

  function checkLength(promptTokens: number, maxNew: number): void {
    if (maxNew > maxTokens) {
      throw new ApiError(
        400,
        `max_tokens is ${maxNew}, but this server allows at most ${maxTokens}`,
        "invalid_request_error",
        "max_tokens",
        "max_tokens_exceeded",
      );
    }
    if (promptTokens + maxNew > model.maxLength) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${model.maxLength} tokens. However, you requested ${promptTokens + maxNew} tokens (${promptTokens} in the prompt, ${maxNew} for the completion).`,
        "invalid_request_error",
        "prompt",
        "context_length_exceeded",
      );
    }
    if (promptTokens === 0) throw new ApiError(400, "the prompt is empty", "invalid_request_error", "prompt");
  }

  /** Sampling options of choice `j` of a request: its own seed (seed + j), so n choices differ but repeat. */
  function sampling(
    r: {
      temperature?: number | null;
      top_p?: number | null;
      seed?: number | null;
      stop?: string | string[] | null;
    },
    maxNew: number,
    j = 0,
  ): SamplingOptions {
    const stops = r.stop == null ? [] : typeof r.stop === "string" ? [r.stop] : r.stop;
    return {
      maxNewTokens: maxNew,
      temperature: r.temperature ?? 1,
      ...(r.top_p != null ? { topP: r.top_p } : {}),
      ...(r.seed != null ? { seed: r.seed + j } : {}),
      ...(stops.length ? { stopStrings: stops } : {}),
      ...(eos !== null ? { stopTokenIds: [eos] } : {}),
    };
  }

  async function encodePrompt(
    p: string | number[],
  ): Promise<{ ids: number[]; pieces: () => Promise<Pieces> }> {
    if (typeof p !== "string") {
      const bad = p.find((t) => t >= tok.vocabSize);
      if (bad !== undefined)
        throw new ApiError(
          400,
          `token id ${bad} is outside the vocabulary (size ${tok.vocabSize})`,
          "invalid_request_error",
          "prompt",
        );
      return { ids: p, pieces: () => decodePieces(tok, p) };
    }
    if (tok.encodeWithOffsets) {
      const enc = await tok.encodeWithOffsets(p);
      return { ids: enc.ids, pieces: async () => promptPieces(p, enc.offsets) };
    }
    const ids = await tok.encode(p);
    return { ids, pieces: () => decodePieces(tok, ids) };
  }

  /** Generate for one prompt; `onText` streams text deltas (stop strings held back until resolved). */
  async function generateOne(
    ids: number[],
    opts: SamplingOptions,
    signal: AbortSignal,
    onText?: (delta: string) => void,
  ): Promise<{ text: string; tokens: number[]; finish: "stop" | "length" }> {
    if (opts.maxNewTokens === 0) return { text: "", tokens: [], finish: "length" };
    const stops = opts.stopStrings ?? [];
    const hold = Math.max(0, ...stops.map((s) => s.length - 1));
    const generated: number[] = [];
    let emitted = 0;
    let stoppedByString = false;
    let pending: Promise<void> = Promise.resolve();
    const onToken = onText
      ? (tokenId: number) => {
          generated.push(tokenId);
          const snapshot = generated.slice();
          // Decoding is async; chain so deltas go out in order.
          pending = pending.then(async () => {
            if (stoppedByString) return;
            const text = (
              await decodePieces(
                tok,
                snapshot.filter((t) => t !== eos),
                ids,
              )
            ).text;
            const cut = applyStop(text, stops);
            if (cut.stopped) stoppedByString = true;
            const upto = cut.stopped ? cut.text.length : Math.max(emitted, text.length - hold);
            if (upto > emitted) {
              onText(cut.text.slice(emitted, upto));
              emitted = upto;
            }
          });
        }
      : undefined;
    const result = await queue.generate(ids, opts, onToken, signal);
    await pending;
    const genTokens = result.tokens.filter((t) => t !== eos);
    const full = (await decodePieces(tok, genTokens, ids)).text;
    const cut = applyStop(full, stops);
    if (onText && cut.text.length > emitted) onText(cut.text.slice(emitted));
    return {
      text: cut.text,
      tokens: result.tokens,
      finish: cut.stopped || result.finishReason === "stop" ? "stop" : "length",
    };
  }

  /** OpenAI's `logprobs` object for seq[from..] (or all of seq when the prompt is echoed). */
  async function logprobsFor(seq: number[], from: number, topK: number, promptPcs: Pieces | undefined) {
    const scored = await queue.score(seq, topK);
    const comp = await decodePieces(tok, seq.slice(from), seq.slice(0, from));
    const pieces: Pieces = promptPcs
      ? {
          text: promptPcs.text + comp.text,
          tokens: [...promptPcs.tokens, ...comp.tokens],
          offsets: [...promptPcs.offsets, ...comp.offsets.map((o) => o + promptPcs.text.length)],
        }
      : comp;
    const start = promptPcs ? 0 : from;
    const tokens: string[] = [];
    const tokenLogprobs: (number | null)[] = [];
    const top: (Record<string, number> | null)[] = [];
    const offsets: number[] = [];
    for (let i = start; i < seq.length; i++) {
      const k = i - start;
      tokens.push(pieces.tokens[k] ?? "");
      offsets.push(pieces.offsets[k] ?? 0);
      tokenLogprobs.push(scored.logprobs[i] ?? null);
      const t = scored.top[i];
      if (!t || topK === 0) top.push(t ? {} : null);
      else {
        const entry: Record<string, number> = {};
        for (const [tid, lp] of t) {
          const s = (await tok.decode([tid])) || `<${tid}>`;
          if (!(s in entry)) entry[s] = lp;
        }
        top.push(entry);
      }
    }
    return { tokens, token_logprobs: tokenLogprobs, top_logprobs: top, text_offset: offsets };
  }

  async function completions(
    body: CompletionRequest,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<void> {
    checkModel(body.model);
    const prompts = promptList(body.prompt);
    const maxNew = body.max_tokens ?? defaultMaxTokens;
    if (body.stream && prompts.length > 1)
      throw new ApiError(400, "stream supports a single prompt", "invalid_request_error", "prompt");
    const n = body.n ?? 1;
    if (body.stream && n > 1) throw new ApiError(400, "stream supports n = 1", "invalid_request_error", "n");
    const encoded = await Promise.all(prompts.map(encodePrompt));
    for (const e of encoded) checkLength(e.ids.length, maxNew);
    const opts = sampling(body, maxNew);
    const created = now();
    const cid = id("cmpl");
    const modelId = model.id;

    if (body.stream) {
      const e = encoded[0] as (typeof encoded)[number];
      startSse(res);
      if (body.echo) {
        const pieces = await e.pieces();
        sse(res, {
          id: cid,
          object: "text_completion",
          created,
          model: modelId,
          choices: [{ index: 0, text: pieces.text, logprobs: null, finish_reason: null }],
        });
      }
      const out = await generateOne(e.ids, opts, signal, (delta) =>
        sse(res, {
          id: cid,
          object: "text_completion",
          created,
          model: modelId,
          choices: [{ index: 0, text: delta, logprobs: null, finish_reason: null }],
        }),
      );
      sse(res, {
        id: cid,
        object: "text_completion",
        created,
        model: modelId,
        choices: [{ index: 0, text: "", logprobs: null, finish_reason: out.finish }],
      });
      endSse(res);
      return;
    }

    // Choices in OpenAI's order: prompt by prompt, n each (index = prompt * n + j); all go to the batching
    // queue at once. Prompt tokens count once per prompt.
    const promptTokens = encoded.reduce((sum, e) => sum + e.ids.length, 0);
    let completionTokens = 0;
    const jobs = encoded.flatMap((e) => Array.from({ length: n }, (_, j) => ({ e, j })));
    const choices = await Promise.all(
      jobs.map(async ({ e, j }, index) => {
        const out = await generateOne(e.ids, sampling(body, maxNew, j), signal);
        completionTokens += out.tokens.length;
        let logprobs: unknown = null;
        const promptPcs = body.echo ? await e.pieces() : undefined;
        if (body.logprobs != null) {
          const genIds = out.tokens.filter((t) => t !== eos);
          logprobs = await logprobsFor([...e.ids, ...genIds], e.ids.length, body.logprobs, promptPcs);
        }
        return {
          index,
          text: (promptPcs ? promptPcs.text : "") + out.text,
          logprobs,
          finish_reason: out.finish,
        };
      }),
    );
    sendJson(res, 200, {
      id: cid,
      object: "text_completion",
      created,
      model: modelId,
      choices,
      usage: {
        prompt_tokens: promptTokens,
        completion_tokens: completionTokens,
        total_tokens: promptTokens + completionTokens,
      },
    });
  }

  async function chat(body: ChatRequest, res: ServerResponse, signal: AbortSignal): Promise<void> {
    checkModel(body.model);
    if (!tok.applyChatTemplate)
      throw new ApiError(
        400,
        "this model's tokenizer has no chat template",
        "invalid_request_error",
        "messages",
      );
    const messages = body.messages.map((m) => ({
      role: (m.role === "developer" ? "system" : m.role) as "system" | "user" | "assistant",
      content: typeof m.content === "string" ? m.content : m.content.map((p) => p.text).join(""),
    }));
    let promptText: string;
    try {
      promptText = tok.applyChatTemplate(messages, { addGenerationPrompt: true });
    } catch (e) {
      throw new ApiError(
        400,
        `chat template failed: ${(e as Error).message}`,
        "invalid_request_error",
        "messages",
      );
    }
    // The template writes the special tokens itself, as transformers' apply_chat_template(tokenize=True).
    const ids = await tok.encode(promptText, { addSpecialTokens: false });
    const requested = body.max_completion_tokens ?? body.max_tokens;
    const maxNew = requested ?? Math.min(maxTokens, model.maxLength - ids.length);
    checkLength(ids.length, maxNew);
    const opts = sampling(body, maxNew);
    const created = now();
    const cid = id("chatcmpl");
    const n = body.n ?? 1;
    if (body.stream && n > 1) throw new ApiError(400, "stream supports n = 1", "invalid_request_error", "n");
    if (body.stream) {
      startSse(res);
      const chunk = (delta: unknown, finish: string | null) =>
        sse(res, {
          id: cid,
          object: "chat.completion.chunk",
          created,
          model: model.id,
          choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
        });
      chunk({ role: "assistant", content: "" }, null);
      const out = await generateOne(ids, opts, signal, (delta) => chunk({ content: delta }, null));
      chunk({}, out.finish);
      endSse(res);
      return;
    }
    const outs = await Promise.all(
      Array.from({ length: n }, (_, j) => generateOne(ids, sampling(body, maxNew, j), signal)),
    );
    const completionTokens = outs.reduce((sum, o) => sum + o.tokens.length, 0);
    sendJson(res, 200, {
      id: cid,
      object: "chat.completion",
      created,
      model: model.id,
      choices: outs.map((out, index) => ({
        index,
        message: { role: "assistant", content: out.text },
        logprobs: null,
        finish_reason: out.finish,
      })),
      usage: {
        prompt_tokens: ids.length,
        completion_tokens: completionTokens,
        total_tokens: ids.length + completionTokens,
      },
    });
  }

  function startSse(res: ServerResponse): void {
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
  }
  function sse(res: ServerResponse, data: unknown): void {
    if (!res.writableEnded) res.write(`data: ${JSON.stringify(data)}\n\n`);
  }
  function endSse(res: ServerResponse): void {
    if (!res.writableEnded) res.end("data: [DONE]\n\n");
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "");
    const controller = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) controller.abort();
    });
    if (closing) {
      req.resume();
      throw new ApiError(503, "server is shutting down", "server_error", null, "shutting_down");
    }
    if (req.method === "GET" && (path === "/health" || path === "")) {
      sendJson(res, 200, { status: "ok", model: model.id, queue: queue.size });
      return;
    }
    if (req.method === "GET" && path === "/v1/models") {
      sendJson(res, 200, {
        object: "list",
        data: [
          {
            id: model.id,
            object: "model",
            created: 0,
            owned_by: "hippocrates",
            max_model_len: model.maxLength,
          },
        ],
      });
      return;
    }
    if (req.method === "GET" && path.startsWith("/v1/models/")) {
      const name = decodeURIComponent(path.slice("/v1/models/".length));
      checkModel(name);
      sendJson(res, 200, {
        id: model.id,
        object: "model",
        created: 0,
        owned_by: "hippocrates",
        max_model_len: model.maxLength,
      });
      return;
    }
    const route =
      path === "/v1/completions" ? "completions" : path === "/v1/chat/completions" ? "chat" : undefined;
    if (!route) {
      req.resume();
      throw new ApiError(
        404,
        `no route ${req.method} ${url.pathname}`,
        "invalid_request_error",
        null,
        "not_found",
      );
    }
    if (req.method !== "POST") {
      req.resume();
      throw new ApiError(
        405,
        `${url.pathname} takes POST`,
        "invalid_request_error",
        null,
        "method_not_allowed",
      );
    }
    const raw = await readBody(req, maxBody);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch (e) {
      throw new ApiError(
        400,
        `request body is not valid JSON: ${(e as Error).message}`,
        "invalid_request_error",
        null,
        "invalid_json",
      );
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) {
      throw new ApiError(
        400,
        "request body must be a JSON object",
        "invalid_request_error",
        null,
        "invalid_json",
      );
    }
    if (route === "completions") await completions(parseBody(completionSchema, body), res, controller.signal);
    else await chat(parseBody(chatSchema, body), res, controller.signal);
  }

  const server = createHttpServer((req, res) => {
    inFlight += 1;
    const t0 = performance.now();
    handle(req, res)
      .catch((e: unknown) => {
        const err =
          e instanceof ApiError
            ? e
            : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, "server_error");
        if (err.status >= 500 && !(e instanceof ApiError)) log(`error: ${(e as Error)?.stack ?? String(e)}`);
        if (res.headersSent) {
          // Mid-stream: report in the stream, then end it.
          sse(res, err.toJSON());
          endSse(res);
        } else sendJson(res, err.status, err.toJSON(), err.status === 413 || closing);
      })
      .finally(() => {
        inFlight -= 1;
        log(`${req.method} ${req.url} ${res.statusCode} ${(performance.now() - t0).toFixed(0)}ms`);
        if (closing && inFlight === 0) drained?.();
      });
  });
  // Slow or stuck clients must not hold the server: headers within 10 s, whole request within 60 s.
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;

  return {
    server,
    queue,
    listen(port = 8000, host = "127.0.0.1") {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    async close() {
      if (closing) return;
      closing = true;
      const stopped = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      if (inFlight > 0) await new Promise<void>((r) => (drained = r));
      await queue.idle();
      server.closeIdleConnections();
      await stopped;
    },
  };
}
