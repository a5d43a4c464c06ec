/**
 * `hippo serve`: an OpenAI-compatible HTTP server on node:http (no framework: three routes, and streaming and
 * body limits need the raw request and response anyway).
 *
 * Routes: GET /v1/models, POST /v1/completions (string or token-id prompts, `echo` + `logprobs` for
 * log-likelihood scoring as lm-evaluation-harness and the eval package's endpoint backend use it),
 * POST /v1/chat/completions (the model's chat template), both with `stream: true` over SSE, GET /health.
 *
 * Safe to expose (the security model is in the package README): every request but /health carries the API key
 * when one is set (`Authorization: Bearer`, compared in constant time), and one is required to listen anywhere
 * but loopback; on loopback the Host header must name loopback (DNS rebinding); bodies must be
 * `application/json` (what a cross-site form or no-cors fetch cannot send); a request's size, its choices
 * (prompts x n) and the work admitted at once are bounded (413, 400, 429 + Retry-After); all of it is checked
 * from the headers or the parsed body before any model work, and before a stream starts. A client that goes
 * away takes its queued and running work with it.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { type AddressInfo, BlockList, isIP } from "node:net";
import { HippoError } from "@hippocrates/core";
import {
  ApiError,
  type ChatRequest,
  type CompletionRequest,
  chatSchema,
  completionSchema,
  parseBody,
  promptList,
} from "./protocol.js";
import { BatchQueue, type RequestScope, type SamplingOptions } from "./queue.js";
import { applyStop, decodePieces, type Pieces, promptPieces } from "./text.js";
import type { ServeModel } from "./types.js";

export interface ServeOptions {
  /**
   * The key clients send as `Authorization: Bearer <key>` (401 otherwise) on every route but /health.
   * Required to listen on anything but loopback.
   */
  apiKey?: string;
  /** Largest request body in bytes (default 1 MiB); larger bodies get 413. */
  maxBodyBytes?: number;
  /** Largest `max_tokens` a request may ask for (default 512); more gets 400. */
  maxTokens?: number;
  /** Most sequences per model call (default 8). */
  maxBatch?: number;
  /** Most choices (prompts x n) one request may ask for (default 64); more gets 400. */
  maxChoices?: number;
  /** Most choices queued or running at once, over all requests (default 256); past it, 429 + Retry-After. */
  maxQueue?: number;
  /** Default `max_tokens` of /v1/completions when the request gives none (OpenAI: 16). */
  defaultMaxTokens?: number;
  log?: (line: string) => void;
}

export const SERVE_DEFAULTS = {
  maxBodyBytes: 1 << 20,
  maxTokens: 512,
  maxBatch: 8,
  // The eval package's endpoint backend sends 16 prompts a request, 4 requests at a time: 64 in flight.
  maxChoices: 64,
  maxQueue: 256,
  defaultMaxTokens: 16,
} as const;

export type ServeLimits = { -readonly [K in keyof typeof SERVE_DEFAULTS]: number };

/**
 * Every limit, checked (a batch of 0 would spin the queue and starve /health; a queue smaller than one
 * request's choices would refuse everything). `flag` names an option as the user wrote it: the CLI passes
 * its flags so the message names `--max-batch`, not `maxBatch`.
 */
export function checkServeOptions(
  o: ServeOptions,
  flag: (key: keyof ServeOptions) => string = (k) => k,
): ServeLimits {
  const int = (key: keyof ServeLimits, min: number, max: number, why = ""): number => {
    const v = o[key] ?? SERVE_DEFAULTS[key];
    if (!Number.isInteger(v) || v < min || v > max)
      throw new HippoError("INVALID_ARGUMENT", `must be an integer in [${min}, ${max}]${why}`, {
        key: flag(key),
        got: String(v),
      });
    return v;
  };
  const maxBodyBytes = int("maxBodyBytes", 1024, 1 << 30);
  const maxTokens = int("maxTokens", 1, 1 << 20);
  const maxBatch = int("maxBatch", 1, 4096);
  const maxChoices = int("maxChoices", 1, 1 << 20);
  const maxQueue = int(
    "maxQueue",
    maxChoices,
    1 << 24,
    ` (at least ${flag("maxChoices")}, or a request of ${maxChoices} choices could never run)`,
  );
  // Unset, OpenAI's 16 or the largest allowed; set, it must be allowed.
  const defaultMaxTokens =
    o.defaultMaxTokens === undefined
      ? Math.min(SERVE_DEFAULTS.defaultMaxTokens, maxTokens)
      : int("defaultMaxTokens", 0, maxTokens, ` (at most ${flag("maxTokens")})`);
  // Printable ASCII without spaces: what fits in `Authorization: Bearer <key>` (RFC 6750's token68, roughly).
  // The key itself never goes into a message.
  if (o.apiKey !== undefined && !/^[\x21-\x7e]{1,4096}$/.test(o.apiKey))
    throw new HippoError("INVALID_ARGUMENT", "must be 1 to 4096 printable ASCII characters without spaces", {
      key: flag("apiKey"),
      got: o.apiKey === "" ? "an empty key" : `a key of ${o.apiKey.length} characters`,
    });
  return { maxBodyBytes, maxTokens, maxBatch, maxChoices, maxQueue, defaultMaxTokens };
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopbackAddress(address: string): boolean {
  const v = isIP(address);
  return v !== 0 && LOOPBACK.check(address, v === 6 ? "ipv6" : "ipv4");
}

/** A name or address only this machine reaches: `localhost`, `*.localhost` (RFC 6761), loopback IPs. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "")
    .toLowerCase();
  return h === "localhost" || h.endsWith(".localhost") || isLoopbackAddress(h);
}

/** Refuse to listen off loopback without a key: anyone who can reach the port could use the model. */
export function checkBinding(host: string, apiKey: string | undefined, hostFlag = "host"): void {
  if (apiKey === undefined && !isLoopbackHost(host))
    throw new HippoError(
      "INVALID_ARGUMENT",
      `refusing to listen on ${host} without an API key (anyone who can reach it could use the model): set one (hippo serve: --api-key or HIPPO_API_KEY), or listen on 127.0.0.1`,
      { key: hostFlag },
    );
}

/** The host part of a Host header (`[::1]:8000` -> `::1`, `localhost:8000` -> `localhost`). */
function hostOf(header: string): string {
  const h = header.trim();
  if (h.startsWith("[")) return h.slice(1, h.includes("]") ? h.indexOf("]") : undefined);
  const colon = h.indexOf(":");
  return colon >= 0 && colon === h.lastIndexOf(":") ? h.slice(0, colon) : h;
}

export interface HippoServer {
  server: Server;
  queue: BatchQueue;
  /** Listen (default 127.0.0.1:8000); refuses a non-loopback host without an API key. */
  listen(port?: number, host?: string): Promise<AddressInfo>;
  /** Graceful shutdown: stop accepting, finish in-flight requests, then close. */
  close(): Promise<void>;
}

const id = (prefix: string) => `${prefix}-${randomBytes(12).toString("hex")}`;
const now = () => Math.floor(Date.now() / 1000);
const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * How long a connection may keep sending a body we answered without reading (413, 401, 415, ...) before it
 * is closed. Closing at once would reset it while the client is still sending, and a reset can discard our
 * answer before the client reads it (what clients saw for a 100 MB body); nginx lingers likewise (its
 * lingering_time). The rest of the body is read and dropped meanwhile: no memory is held for it.
 */
const LINGER_MS = 10_000;

/** The client is gone (connection closed before the request was answered): nothing to answer. */
class ClientGone extends Error {}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const data = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(data),
  });
  res.end(data);
}

/** Drop the rest of a body we answered without reading; cut the connection if it keeps coming. */
function discardBody(req: IncomingMessage): void {
  if (req.complete || req.socket.destroyed) return;
  req.removeAllListeners("data");
  req.resume();
  const timer = setTimeout(() => req.socket.destroy(), LINGER_MS);
  timer.unref();
  const clear = () => clearTimeout(timer);
  req.once("end", clear);
  req.socket.once("close", clear);
}

/** Read the body; past `limit` bytes, stop reading and answer 413 (the rest is discarded, not buffered). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      req.off("close", onGone);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      cleanup();
      reject(
        new ApiError(
          413,
          `request body too large: more than ${limit} bytes (limit ${limit})`,
          "invalid_request_error",
          null,
          "request_too_large",
        ),
      );
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onGone = () => {
      cleanup();
      reject(new ClientGone("the client closed the connection while sending its request"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onGone);
    req.on("close", onGone);
  });
}

export function createServer(model: ServeModel, options: ServeOptions = {}): HippoServer {
  const {
    maxBodyBytes: maxBody,
    maxTokens,
    maxBatch,
    maxChoices,
    maxQueue,
    defaultMaxTokens,
  } = checkServeOptions(options);
  const keyHash = options.apiKey === undefined ? undefined : sha256(options.apiKey);
  const log = options.log ?? (() => {});
  const queue = new BatchQueue(model, maxBatch);
  const tok = model.tokenizer;
  const eos = tok.eosTokenId;
  let closing = false;
  let inFlight = 0;
  /** Choices of the requests being served (admitted and not finished): bounded by maxQueue. */
  let admitted = 0;
  let drained: (() => void) | undefined;
  /** The one model, as OpenAI's model object (with vLLM's max_model_len) in /v1/models and /v1/models/{id}. */
  const modelCard = {
    id: model.id,
    object: "model",
    created: 0,
    owned_by: "hippocrates",
    max_model_len: model.maxLength,
  };

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

  /** OpenAI's 401: no key, or not this server's (compared as SHA-256 digests, in constant time). */
  function authorize(req: IncomingMessage): void {
    if (keyHash === undefined) return;
    const header = req.headers.authorization;
    const m = header === undefined ? null : /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (m && timingSafeEqual(sha256(m[1] as string), keyHash)) return;
    throw new ApiError(
      401,
      m
        ? "Incorrect API key provided."
        : "You didn't provide an API key. Send it in the Authorization header: 'Authorization: Bearer <key>'.",
      "invalid_request_error",
      null,
      "invalid_api_key",
      { "www-authenticate": "Bearer" },
    );
  }

  /**
   * On loopback, a page on another site can still reach us through a name it controls that resolves to
   * 127.0.0.1 (DNS rebinding); the browser then sends that name as Host. Only loopback names pass.
   */
  function checkHost(req: IncomingMessage): void {
    const bound = server.address();
    if (typeof bound !== "object" || bound === null || !isLoopbackAddress(bound.address)) return;
    const host = req.headers.host;
    // Browsers always send Host; an HTTP/1.0 tool without one is not a browser.
    if (host === undefined || isLoopbackHost(hostOf(host))) return;
    throw new ApiError(
      403,
      `Host ${JSON.stringify(host)} is not a loopback name: this server listens on ${bound.address} and answers only to localhost, 127.0.0.1 or [::1]`,
      "invalid_request_error",
      null,
      "invalid_host",
    );
  }

  function busy(choices: number): ApiError {
    const seconds = queue.retryAfterSeconds(choices);
    return new ApiError(
      429,
      `The server is busy: ${admitted} choices are queued or running (limit ${maxQueue}). Retry after ${seconds} s.`,
      "requests",
      null,
      "rate_limit_exceeded",
      { "retry-after": String(seconds) },
    );
  }

  /** Context overflow, in vLLM's words (vllm/entrypoints/openai/serving_engine.py at 0030b9ff). */
  function checkLength(
    promptTokens: number,
    maxNew: number | undefined,
    params: { prompt: "prompt" | "messages"; maxTokens: string },
  ): number {
    const where = params.prompt;
    if (promptTokens === 0) throw new ApiError(400, `the ${where} is empty`, "invalid_request_error", where);
    const L = model.maxLength;
    const overflow = (message: string) =>
      new ApiError(400, message, "invalid_request_error", where, "context_length_exceeded");
    if (maxNew === undefined) {
      // No max_tokens (chat): the completion may use what the prompt leaves, and must have at least 1 token.
      if (promptTokens >= L)
        throw overflow(
          `This model's maximum context length is ${L} tokens. However, you requested ${promptTokens} tokens in the ${where}, Please reduce the length of the ${where}.`,
        );
      return Math.min(maxTokens, L - promptTokens);
    }
    if (maxNew > maxTokens) {
      throw new ApiError(
        400,
        `${params.maxTokens} is ${maxNew}, but this server allows at most ${maxTokens}`,
        "invalid_request_error",
        params.maxTokens,
        "max_tokens_exceeded",
      );
    }
    if (promptTokens + maxNew > L)
      throw overflow(
        `This model's maximum context length is ${L} tokens. However, you requested ${promptTokens + maxNew} tokens (${promptTokens} in the ${where}, ${maxNew} in the completion). Please reduce the length of the ${where} or completion.`,
      );
    return maxNew;
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
      topP: r.top_p ?? undefined,
      seed: r.seed == null ? undefined : r.seed + j,
      stopStrings: stops.length ? stops : undefined,
      stopTokenIds: eos === null ? undefined : [eos],
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
    scope: RequestScope,
    ids: number[],
    opts: SamplingOptions,
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
    const result = await queue.generate(scope, ids, opts, onToken);
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
  async function logprobsFor(
    scope: RequestScope,
    seq: number[],
    from: number,
    topK: number,
    promptPcs: Pieces | undefined,
  ) {
    const scored = await queue.score(scope, seq, topK);
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
    scope: RequestScope,
  ): Promise<void> {
    const prompts = promptList(body.prompt);
    const n = body.n ?? 1;
    const encoded = await Promise.all(prompts.map(encodePrompt));
    let maxNew = body.max_tokens ?? defaultMaxTokens;
    for (const e of encoded)
      maxNew = checkLength(e.ids.length, maxNew, { prompt: "prompt", maxTokens: "max_tokens" });
    const created = now();
    const cid = id("cmpl");
    const modelId = model.id;

    if (body.stream) {
      const e = encoded[0] as (typeof encoded)[number];
      const opts = sampling(body, maxNew);
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
      const out = await generateOne(scope, e.ids, opts, (delta) =>
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
        const out = await generateOne(scope, e.ids, sampling(body, maxNew, j));
        completionTokens += out.tokens.length;
        let logprobs: unknown = null;
        const promptPcs = body.echo ? await e.pieces() : undefined;
        if (body.logprobs != null) {
          const genIds = out.tokens.filter((t) => t !== eos);
          logprobs = await logprobsFor(scope, [...e.ids, ...genIds], e.ids.length, body.logprobs, promptPcs);
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

  async function chat(body: ChatRequest, res: ServerResponse, scope: RequestScope): Promise<void> {
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
    const maxNew = checkLength(ids.length, body.max_completion_tokens ?? body.max_tokens ?? undefined, {
      prompt: "messages",
      maxTokens: body.max_completion_tokens != null ? "max_completion_tokens" : "max_tokens",
    });
    const created = now();
    const cid = id("chatcmpl");
    const n = body.n ?? 1;
    if (body.stream) {
      const opts = sampling(body, maxNew);
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
      const out = await generateOne(scope, ids, opts, (delta) => chunk({ content: delta }, null));
      chunk({}, out.finish);
      endSse(res);
      return;
    }
    const outs = await Promise.all(
      Array.from({ length: n }, (_, j) => generateOne(scope, ids, sampling(body, maxNew, j))),
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
    if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(data)}\n\n`);
  }
  function endSse(res: ServerResponse): void {
    if (!res.writableEnded && !res.destroyed) res.end("data: [DONE]\n\n");
  }

  /** The request's choices (prompts x n), refused past `maxChoices` before any work. */
  function choicesOf(route: "completions" | "chat", body: CompletionRequest | ChatRequest): number {
    const n = body.n ?? 1;
    const prompts = route === "completions" ? promptList((body as CompletionRequest).prompt).length : 1;
    const choices = prompts * n;
    if (choices > maxChoices)
      throw new ApiError(
        400,
        `this request asks for ${choices} choices (${prompts} prompt${prompts === 1 ? "" : "s"} x n ${n}); this server allows at most ${maxChoices} per request`,
        "invalid_request_error",
        n > 1 ? "n" : "prompt",
        "too_many_choices",
      );
    if (body.stream && prompts > 1)
      throw new ApiError(400, "stream supports a single prompt", "invalid_request_error", "prompt");
    if (body.stream && n > 1) throw new ApiError(400, "stream supports n = 1", "invalid_request_error", "n");
    return choices;
  }

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    scope: RequestScope,
    expectsContinue: boolean,
  ): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "");
    if (closing) throw new ApiError(503, "server is shutting down", "server_error", null, "shutting_down");
    checkHost(req);
    if (req.method === "GET" && (path === "/health" || path === "")) {
      sendJson(res, 200, { status: "ok" });
      return;
    }
    authorize(req);
    if (req.method === "GET" && path === "/v1/models") {
      sendJson(res, 200, { object: "list", data: [modelCard] });
      return;
    }
    if (req.method === "GET" && path.startsWith("/v1/models/")) {
      checkModel(decodeURIComponent(path.slice("/v1/models/".length)));
      sendJson(res, 200, modelCard);
      return;
    }
    const route =
      path === "/v1/completions" ? "completions" : path === "/v1/chat/completions" ? "chat" : undefined;
    if (!route)
      throw new ApiError(
        404,
        `no route ${req.method} ${url.pathname}`,
        "invalid_request_error",
        null,
        "not_found",
      );
    if (req.method !== "POST")
      throw new ApiError(
        405,
        `${url.pathname} takes POST`,
        "invalid_request_error",
        null,
        "method_not_allowed",
      );
    // A page on another site can POST text/plain, form or multipart bodies without asking (no CORS
    // preflight); application/json needs a preflight this server never grants.
    const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json")
      throw new ApiError(
        415,
        `request bodies must be application/json (got ${req.headers["content-type"] ? JSON.stringify(req.headers["content-type"]) : "no Content-Type"})`,
        "invalid_request_error",
        null,
        "unsupported_media_type",
      );
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > maxBody)
      throw new ApiError(
        413,
        `request body too large: ${declared} bytes declared (limit ${maxBody})`,
        "invalid_request_error",
        null,
        "request_too_large",
      );
    if (admitted >= maxQueue) throw busy(1);
    if (expectsContinue) res.writeContinue();
    const raw = await readBody(req, maxBody);
    let json: unknown;
    try {
      json = JSON.parse(raw.toString("utf8"));
    } catch (e) {
      throw new ApiError(
        400,
        `request body is not valid JSON: ${(e as Error).message}`,
        "invalid_request_error",
        null,
        "invalid_json",
      );
    }
    if (json === null || typeof json !== "object" || Array.isArray(json)) {
      throw new ApiError(
        400,
        "request body must be a JSON object",
        "invalid_request_error",
        null,
        "invalid_json",
      );
    }
    const body =
      route === "completions" ? parseBody(completionSchema, json, route) : parseBody(chatSchema, json, route);
    checkModel(body.model);
    const choices = choicesOf(route, body);
    if (admitted + choices > maxQueue) throw busy(choices);
    admitted += choices;
    try {
      if (route === "completions") await completions(body as CompletionRequest, res, scope);
      else await chat(body as ChatRequest, res, scope);
    } finally {
      admitted -= choices;
    }
  }

  function onRequest(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    inFlight += 1;
    const t0 = performance.now();
    const controller = new AbortController();
    res.on("close", () => {
      if (!res.writableFinished) controller.abort();
    });
    const scope = queue.scope(controller.signal);
    const gone = () => controller.signal.aborted || (!res.writableFinished && req.socket.destroyed);
    handle(req, res, scope, expectsContinue)
      .catch((e: unknown) => {
        if (gone() || e instanceof ClientGone) return;
        const err =
          e instanceof ApiError
            ? e
            : new ApiError(500, `internal error: ${(e as Error)?.message ?? String(e)}`, "server_error");
        // Our own bugs keep their stack; a request's mistakes are the client's answer, not our log.
        if (!(e instanceof ApiError)) log(`error: ${(e as Error)?.stack ?? String(e)}`);
        if (res.headersSent) {
          // Mid-stream (only a fault of ours: every check runs before the stream starts).
          sse(res, err.toJSON());
          endSse(res);
        } else sendJson(res, err.status, err.toJSON(), err.headers);
        discardBody(req);
      })
      .finally(() => {
        scope.close();
        inFlight -= 1;
        const ms = (performance.now() - t0).toFixed(0);
        if (gone())
          log(
            `${req.method} ${req.url} client disconnected after ${ms} ms; cancelled its work: ${scope.cancelledQueued} queued and ${scope.cancelledRunning} running`,
          );
        else log(`${req.method} ${req.url} ${res.statusCode} ${ms}ms`);
        if (closing && inFlight === 0) drained?.();
      });
  }

  const server = createHttpServer((req, res) => onRequest(req, res, false));
  // `Expect: 100-continue` (curl for large bodies): every check on the headers runs before the client is told
  // to send the body, so a refused body is never sent.
  server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => onRequest(req, res, true));
  // Slow or stuck clients must not hold the server: headers within 10 s, whole request within 60 s.
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;

  return {
    server,
    queue,
    async listen(port = 8000, host = "127.0.0.1") {
      checkBinding(host, options.apiKey);
      return new Promise<AddressInfo>((resolve, reject) => {
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
      // Every request is answered; what is left are idle connections and bodies being discarded.
      server.closeAllConnections();
      await stopped;
    },
  };
}
