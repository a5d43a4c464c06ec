/**
 * A judge model behind any OpenAI-compatible `/v1/chat/completions` endpoint, with an on-disk answer cache.
 *
 * Plain `fetch` rather than the `openai` npm client: the current `openai` release requires Node >= 22 (this
 * project runs on Node 20), and the retry rules here (honour Retry-After, retry dropped connections, count
 * every HTTP attempt and token for the cost report, cache each answer before anything else happens) are the
 * whole point of this module, so they are written out instead of configured inside a client.
 *
 * Cache: an append-only JSONL file, one line per answered request, keyed by the sha256 of the canonical
 * request body (model, messages, temperature, max_tokens). Each line is written and fsynced as soon as the
 * answer arrives, so a crash or Ctrl-C loses at most the requests in flight; the next run reads the cache and
 * sends only the requests it lacks. A torn last line (a crash mid-write) is ignored.
 */
import { mkdir, open, readFile, truncate } from "node:fs/promises";
import { dirname } from "node:path";
import { HippoError, isPlainObject, parseJsonSafe } from "@hippocrates/core";
import { sha256Hex } from "./text.js";

export interface ChatRequest {
  model: string;
  messages: Array<{ role: "system" | "user" | "assistant"; content: string }>;
  temperature?: number;
  max_tokens?: number;
}

export interface ChatAnswer {
  content: string;
  promptTokens: number;
  completionTokens: number;
}

export interface JudgeClientOptions {
  /** e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8080/v1`; default env OPENAI_BASE_URL. */
  baseUrl?: string;
  /** Default env OPENAI_API_KEY; a local server may need none. */
  apiKey?: string;
  /** Requests in flight at once; default 4. */
  concurrency?: number;
  /** Attempts per request after the first; default 6. */
  maxRetries?: number;
  /** First backoff delay in ms (doubles each retry, full jitter, capped by maxDelayMs); default 1000. */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Per-attempt timeout in ms; default 120000. */
  timeoutMs?: number;
  /** Prices in the currency of your choice per 1K tokens, for the cost estimate. */
  pricePer1kPrompt?: number;
  pricePer1kCompletion?: number;
  /** Seeded jitter (tests); default Math.random. */
  random?: () => number;
  fetch?: typeof fetch;
}

export interface JudgeStats {
  /** HTTP attempts made (each retry counts). */
  httpRequests: number;
  /** Requests answered from the endpoint in this run. */
  answered: number;
  /** Requests answered from the cache. */
  cached: number;
  retries: number;
  promptTokens: number;
  completionTokens: number;
  /** Estimated cost of this run's tokens (cached answers cost nothing again). */
  estimatedCost: number;
}

export function requestKey(request: ChatRequest): string {
  const canonical = {
    model: request.model,
    messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
    temperature: request.temperature ?? null,
    max_tokens: request.max_tokens ?? null,
  };
  return sha256Hex(JSON.stringify(canonical));
}

interface CacheLine {
  key: string;
  answer: ChatAnswer;
}

export interface AnswerCache {
  get(key: string): ChatAnswer | undefined;
  /** Append and fsync one answer. */
  put(key: string, answer: ChatAnswer): Promise<void>;
  readonly size: number;
}

/** Open (or create) the append-only answer cache at `path`. */
export async function openAnswerCache(path: string): Promise<AnswerCache> {
  const map = new Map<string, ChatAnswer>();
  let text = "";
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT")
      throw new HippoError("IO", `cannot read judge cache: ${(e as Error).message}`, {
        file: path,
        cause: e,
      });
  }
  const lines = text.split("\n");
  // A crash mid-append leaves a torn last line (no newline after it). It is cut off the file before anything
  // is appended, so the cache stays a sequence of complete lines; a bad line anywhere else is real damage.
  let tornAt: number | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (!line.trim()) continue;
    let v: unknown;
    try {
      v = parseJsonSafe(line);
    } catch (e) {
      if (i === lines.length - 1) {
        tornAt = Buffer.byteLength(
          lines
            .slice(0, i)
            .map((l) => `${l}\n`)
            .join(""),
          "utf8",
        );
        continue;
      }
      throw new HippoError("INVALID_FORMAT", "damaged judge cache line", {
        file: path,
        line: i + 1,
        cause: e,
      });
    }
    if (
      isPlainObject(v) &&
      typeof v.key === "string" &&
      isPlainObject(v.answer) &&
      typeof v.answer.content === "string"
    ) {
      const a = v.answer;
      map.set(v.key, {
        content: a.content as string,
        promptTokens: Number(a.promptTokens) || 0,
        completionTokens: Number(a.completionTokens) || 0,
      });
    }
  }
  await mkdir(dirname(path), { recursive: true });
  if (tornAt !== undefined) await truncate(path, tornAt);
  // A complete last line without its newline (possible if the crash hit between the two) gets one first.
  let needsNewline = tornAt === undefined && text.length > 0 && !text.endsWith("\n");
  // Appends are serialised so lines never interleave.
  let chain: Promise<void> = Promise.resolve();
  return {
    get: (key) => map.get(key),
    get size() {
      return map.size;
    },
    put(key, answer) {
      map.set(key, answer);
      const line: CacheLine = { key, answer };
      const next = chain.then(async () => {
        const handle = await open(path, "a", 0o644);
        try {
          await handle.appendFile(`${needsNewline ? "\n" : ""}${JSON.stringify(line)}\n`);
          needsNewline = false;
          await handle.sync();
        } finally {
          await handle.close();
        }
      });
      chain = next.catch(() => {});
      return next;
    },
  };
}

export interface JudgeClient {
  /** Answer each request (from the cache when possible); results in request order. `onAnswer` sees each one as it lands. */
  complete(
    requests: ChatRequest[],
    options?: {
      signal?: AbortSignal;
      onAnswer?: (index: number, answer: ChatAnswer, cached: boolean) => void;
    },
  ): Promise<ChatAnswer[]>;
  stats(): JudgeStats;
}

const RETRYABLE = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

/** Retry-After in ms: delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const secs = Number(value);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new HippoError("ABORTED", "judge run aborted"));
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new HippoError("ABORTED", "judge run aborted"));
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

export function createJudgeClient(cache: AnswerCache, options: JudgeClientOptions = {}): JudgeClient {
  const baseUrl = (options.baseUrl ?? process.env.OPENAI_BASE_URL ?? "https://api.openai.com/v1").replace(
    /\/+$/,
    "",
  );
  const apiKey = options.apiKey ?? process.env.OPENAI_API_KEY;
  const concurrency = Math.max(1, options.concurrency ?? 4);
  const maxRetries = options.maxRetries ?? 6;
  const baseDelay = options.baseDelayMs ?? 1000;
  const maxDelay = options.maxDelayMs ?? 60_000;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const random = options.random ?? Math.random;
  const doFetch = options.fetch ?? fetch;
  const stats: JudgeStats = {
    httpRequests: 0,
    answered: 0,
    cached: 0,
    retries: 0,
    promptTokens: 0,
    completionTokens: 0,
    estimatedCost: 0,
  };
  const url = `${baseUrl}/chat/completions`;

  async function attempt(
    request: ChatRequest,
    signal: AbortSignal | undefined,
  ): Promise<{
    answer?: ChatAnswer;
    retryAfterMs?: number;
    error: HippoError | undefined;
    retryable: boolean;
  }> {
    stats.httpRequests++;
    const timeout = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    let body: string;
    try {
      res = await doFetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
        },
        body: JSON.stringify({ ...request, stream: false }),
        signal: combined,
      });
      body = await res.text();
    } catch (e) {
      if (signal?.aborted) throw new HippoError("ABORTED", "judge run aborted", { cause: e });
      const what = timeout.aborted
        ? `timed out after ${timeoutMs} ms`
        : `connection failed: ${(e as Error).message}`;
      return { error: new HippoError("HTTP", `${url}: ${what}`, { cause: e }), retryable: true };
    }
    if (!res.ok) {
      const error = new HippoError("HTTP", `${url}: HTTP ${res.status}`, { got: body.slice(0, 200) });
      return {
        error,
        retryable: RETRYABLE.has(res.status),
        retryAfterMs: parseRetryAfter(res.headers.get("retry-after")),
      };
    }
    let json: unknown;
    try {
      json = parseJsonSafe(body);
    } catch (e) {
      return {
        error: new HippoError("HTTP", `${url}: response is not JSON`, { got: body.slice(0, 200), cause: e }),
        retryable: true,
      };
    }
    const choice = isPlainObject(json) && Array.isArray(json.choices) ? json.choices[0] : undefined;
    const message = isPlainObject(choice) && isPlainObject(choice.message) ? choice.message : undefined;
    // A message with null content (a refusal, a filtered answer) is an answer we cannot read: it is kept as ""
    // and ends up among the rejects; a response without a message at all is a broken server.
    const content = message ? (message.content ?? "") : undefined;
    if (typeof content !== "string") {
      return {
        error: new HippoError("HTTP", `${url}: response has no choices[0].message.content`, {
          got: body.slice(0, 200),
        }),
        retryable: false,
      };
    }
    const usage = isPlainObject(json) && isPlainObject(json.usage) ? json.usage : {};
    return {
      answer: {
        content,
        promptTokens: Number(usage.prompt_tokens) || 0,
        completionTokens: Number(usage.completion_tokens) || 0,
      },
      error: undefined,
      retryable: false,
    };
  }

  async function completeOne(request: ChatRequest, signal: AbortSignal | undefined): Promise<ChatAnswer> {
    let last: HippoError | undefined;
    for (let k = 0; k <= maxRetries; k++) {
      if (signal?.aborted) throw new HippoError("ABORTED", "judge run aborted");
      const r = await attempt(request, signal);
      if (r.answer) return r.answer;
      last = r.error;
      if (!r.retryable || k === maxRetries) break;
      stats.retries++;
      // Exponential backoff with full jitter; a server's Retry-After is a floor.
      const backoff = random() * Math.min(maxDelay, baseDelay * 2 ** k);
      await sleep(Math.max(backoff, r.retryAfterMs ?? 0), signal);
    }
    throw last ?? new HippoError("HTTP", "judge request failed");
  }

  return {
    stats: () => ({ ...stats }),
    async complete(requests, opts = {}) {
      const results: ChatAnswer[] = new Array(requests.length);
      let next = 0;
      let failure: unknown;
      const worker = async () => {
        while (failure === undefined) {
          const i = next++;
          if (i >= requests.length) return;
          const request = requests[i] as ChatRequest;
          const key = requestKey(request);
          const hit = cache.get(key);
          if (hit) {
            stats.cached++;
            results[i] = hit;
            opts.onAnswer?.(i, hit, true);
            continue;
          }
          try {
            const answer = await completeOne(request, opts.signal);
            await cache.put(key, answer);
            stats.answered++;
            stats.promptTokens += answer.promptTokens;
            stats.completionTokens += answer.completionTokens;
            stats.estimatedCost =
              (stats.promptTokens / 1000) * (options.pricePer1kPrompt ?? 0) +
              (stats.completionTokens / 1000) * (options.pricePer1kCompletion ?? 0);
            results[i] = answer;
            opts.onAnswer?.(i, answer, false);
          } catch (e) {
            failure ??= e;
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, requests.length) }, worker));
      if (failure !== undefined) throw failure;
      return results;
    },
  };
}

/** One line for logs: `judge: 120 requests (3 retries), 80 cached, 51234 prompt + 8123 completion tokens, est. cost 1.84`. */
export function formatJudgeStats(s: JudgeStats): string {
  return `judge: ${s.answered} answered over ${s.httpRequests} HTTP requests (${s.retries} retries), ${s.cached} from cache, ${s.promptTokens} prompt + ${s.completionTokens} completion tokens, estimated cost ${s.estimatedCost.toFixed(4)}`;
}
