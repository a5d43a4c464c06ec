/**
 * A ScoringModel backed by an OpenAI-compatible completions endpoint (vLLM, llama.cpp's server, the
 * project's own server): POST {baseUrl}/v1/completions with
 *   { model, prompt: [[token ids of context + continuation], ...], echo: true, max_tokens: 0, logprobs: 1 }
 * The response echoes the prompt's tokens with `logprobs.token_logprobs` (null for the first token) and
 * `logprobs.top_logprobs` (the top-1 token per position, as {token_string: logprob}). The continuation's
 * log-probability is the sum over its last len(continuation) positions; is_greedy holds when each of those
 * positions' top-1 token string equals the echoed token string (as lm-evaluation-harness's OpenAI backend).
 * Prompts are sent as token ids so the server's tokenizer cannot re-split them.
 */
import {
  HippoError,
  type LogLikelihoodRequest,
  type LogLikelihoodResult,
  type RunOptions,
  type ScoringModel,
} from "@hippocrates/core";

export interface OpenAICompletionsOptions {
  /** e.g. http://127.0.0.1:8000, with or without a trailing /v1 or /v1/completions. */
  baseUrl: string;
  /** The `model` field of the request. */
  model: string;
  maxLength: number;
  apiKey?: string;
  /** Requests per HTTP call (default 16). */
  batchSize?: number;
  /** HTTP calls in flight (default 4). */
  concurrency?: number;
  /** Retries after a network error, a timeout, 429 or 5xx (default 3), with exponential backoff. */
  retries?: number;
  /** Per HTTP call (default 120 s). */
  timeoutMs?: number;
  /** First backoff delay (default 500 ms). */
  backoffMs?: number;
  fetch?: typeof fetch;
}

interface CompletionChoice {
  index?: number;
  logprobs?: {
    tokens?: string[];
    token_logprobs?: (number | null)[];
    top_logprobs?: (Record<string, number> | null)[];
  };
}

function parseChoice(
  choice: CompletionChoice | undefined,
  req: LogLikelihoodRequest,
  url: string,
): LogLikelihoodResult {
  const lp = choice?.logprobs;
  const total = req.context.length + req.continuation.length;
  if (
    !lp ||
    !Array.isArray(lp.token_logprobs) ||
    !Array.isArray(lp.tokens) ||
    lp.token_logprobs.length !== total
  ) {
    throw new HippoError("HTTP", "completion response lacks echoed logprobs for every prompt token", {
      file: url,
      key: "choices[].logprobs",
      expected: `${total} token_logprobs (echo: true)`,
      got: lp?.token_logprobs ? String(lp.token_logprobs.length) : "none",
    });
  }
  let logprob = 0;
  let isGreedy = true;
  for (let i = req.context.length; i < total; i++) {
    const v = lp.token_logprobs[i];
    if (typeof v !== "number")
      throw new HippoError("HTTP", "missing logprob for a continuation token", {
        file: url,
        key: `token_logprobs[${i}]`,
      });
    logprob += v;
    const top = lp.top_logprobs?.[i];
    if (!top) {
      isGreedy = false;
      continue;
    }
    let best: string | undefined;
    let bestLp = Number.NEGATIVE_INFINITY;
    for (const [tok, l] of Object.entries(top)) {
      if (l > bestLp) {
        best = tok;
        bestLp = l;
      }
    }
    if (best !== lp.tokens[i]) isGreedy = false;
  }
  return { logprob, isGreedy };
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(new HippoError("ABORTED", "aborted while waiting to retry"));
      },
      { once: true },
    );
  });

export function createOpenAICompletionsModel(opts: OpenAICompletionsOptions): ScoringModel {
  // http://host:8000, .../v1, or .../v1/completions (lm-evaluation-harness's local-completions base_url).
  const base = opts.baseUrl
    .replace(/\/+$/, "")
    .replace(/\/completions$/, "")
    .replace(/\/v1$/, "");
  const url = `${base}/v1/completions`;
  const batchSize = opts.batchSize ?? 16;
  const concurrency = opts.concurrency ?? 4;
  const retries = opts.retries ?? 3;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  const backoffMs = opts.backoffMs ?? 500;
  const doFetch = opts.fetch ?? fetch;

  async function call(batch: LogLikelihoodRequest[], signal?: AbortSignal): Promise<LogLikelihoodResult[]> {
    const body = JSON.stringify({
      model: opts.model,
      prompt: batch.map((r) => [...r.context, ...r.continuation]),
      echo: true,
      max_tokens: 0,
      logprobs: 1,
      temperature: 0,
    });
    let lastError: unknown;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (signal?.aborted) throw new HippoError("ABORTED", "request aborted");
      if (attempt > 0) await sleep(backoffMs * 2 ** (attempt - 1), signal);
      const timeout = AbortSignal.timeout(timeoutMs);
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let res: Response;
      try {
        res = await doFetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            ...(opts.apiKey ? { authorization: `Bearer ${opts.apiKey}` } : {}),
          },
          body,
          signal: combined,
        });
      } catch (e) {
        if (signal?.aborted) throw new HippoError("ABORTED", "request aborted", { cause: e });
        lastError = e;
        continue;
      }
      if (res.status === 429 || res.status >= 500) {
        lastError = new HippoError("HTTP", `server answered ${res.status}`, {
          file: url,
          got: (await res.text()).slice(0, 200),
        });
        continue;
      }
      if (!res.ok) {
        throw new HippoError("HTTP", `server answered ${res.status}`, {
          file: url,
          got: (await res.text()).slice(0, 200),
        });
      }
      let json: { choices?: CompletionChoice[] };
      try {
        json = (await res.json()) as { choices?: CompletionChoice[] };
      } catch (e) {
        throw new HippoError("HTTP", "response is not JSON", { file: url, cause: e });
      }
      const choices = json.choices ?? [];
      if (choices.length !== batch.length) {
        throw new HippoError("HTTP", "wrong number of choices in the response", {
          file: url,
          expected: String(batch.length),
          got: String(choices.length),
        });
      }
      // Choices carry their prompt's index; servers may return them in any order.
      const byIndex = choices.every((c) => Number.isInteger(c.index))
        ? [...choices].sort((a, b) => (a.index as number) - (b.index as number))
        : choices;
      return batch.map((req, i) => parseChoice(byIndex[i], req, url));
    }
    throw new HippoError(
      "HTTP",
      `no answer from ${url} after ${retries + 1} attempts: ${(lastError as Error)?.message ?? lastError}`,
      { file: url, cause: lastError },
    );
  }

  return {
    name: `openai:${base}#${opts.model}`,
    maxLength: opts.maxLength,
    async logLikelihood(
      requests: LogLikelihoodRequest[],
      options?: RunOptions,
    ): Promise<LogLikelihoodResult[]> {
      const batches: LogLikelihoodRequest[][] = [];
      for (let i = 0; i < requests.length; i += batchSize) batches.push(requests.slice(i, i + batchSize));
      const results: LogLikelihoodResult[][] = new Array(batches.length);
      let next = 0;
      const worker = async () => {
        while (next < batches.length) {
          const b = next++;
          results[b] = await call(batches[b] as LogLikelihoodRequest[], options?.signal);
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, batches.length) }, worker));
      return results.flat();
    },
  };
}
