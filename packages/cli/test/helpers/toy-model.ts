/**
 * A small deterministic language model implementing the core interfaces, for server tests that must not
 * depend on training: p(next | prev) is a fixed softmax over the vocabulary computed from (prev, next), so
 * every log-prob a test checks can be recomputed by hand from `toyLogits`.
 */
import type {
  GenerationOptions,
  GenerationResult,
  LogLikelihoodRequest,
  LogLikelihoodResult,
  RunOptions,
  TextTokenizer,
} from "@hippocrates/core";
import { createRng, HippoError } from "@hippocrates/core";
import type { TokenLogprobs } from "@hippocrates/model";
import type { PromptScorer, ServeModel, ServeTokenizer } from "../../src/serve/types.js";

export function toyLogits(prev: number, vocab: number): number[] {
  const out: number[] = [];
  for (let t = 0; t < vocab; t++)
    out.push(((prev * 31 + t * 17) % 13) / 2 + (t === ((prev * 7 + 3) % (vocab - 4)) + 4 ? 4 : 0));
  return out;
}

export function logSoftmax(x: number[]): number[] {
  const m = Math.max(...x);
  const lse = m + Math.log(x.reduce((s, v) => s + Math.exp(v - m), 0));
  return x.map((v) => v - lse);
}

export interface ToyOptions {
  /** Delay per generated token (ms), to hold requests in flight. */
  delayMs?: number;
  maxLength?: number;
}

export function createToyModel(tokenizer: ServeTokenizer & TextTokenizer, options: ToyOptions = {}) {
  const vocab = tokenizer.vocabSize;
  const maxLength = options.maxLength ?? 256;
  /** Prompts per model call, and the decoding steps each call ran (a call cut short by its signal runs fewer). */
  const calls: number[] = [];
  const steps: number[] = [];
  const generator = {
    name: "toy",
    maxLength,
    async generate(prompts: number[][], opts: GenerationOptions & RunOptions): Promise<GenerationResult[]> {
      calls.push(prompts.length);
      const call = steps.push(0) - 1;
      const rng = createRng(opts.seed ?? 0);
      const out: GenerationResult[] = prompts.map(() => ({ tokens: [], finishReason: "length" }));
      const done = prompts.map(() => false);
      for (let step = 0; step < opts.maxNewTokens; step++) {
        // As the model package's generate: an aborted call throws rather than returning a short answer.
        if (opts.signal?.aborted) throw new HippoError("ABORTED", "generation was aborted");
        if (options.delayMs) await new Promise((r) => setTimeout(r, options.delayMs));
        steps[call] = step + 1;
        prompts.forEach((p, i) => {
          if (done[i]) return;
          const r = out[i] as GenerationResult;
          const prev = r.tokens.length
            ? (r.tokens[r.tokens.length - 1] as number)
            : (p[p.length - 1] as number);
          const lp = logSoftmax(toyLogits(prev, vocab));
          let next = 0;
          const temp = opts.temperature ?? 0;
          if (temp === 0) next = lp.indexOf(Math.max(...lp));
          else {
            const w = lp.map((v) => Math.exp(v / temp));
            let u = rng.next() * w.reduce((a, b) => a + b, 0);
            next = w.findIndex((v) => {
              u -= v;
              return u <= 0;
            });
            if (next < 0) next = vocab - 1;
          }
          r.tokens.push(next);
          opts.onToken?.(i, next);
          if (opts.stopTokenIds?.includes(next)) {
            r.finishReason = "stop";
            done[i] = true;
          }
        });
        if (done.every(Boolean)) break;
      }
      return out;
    },
  };
  const scorer: PromptScorer = {
    async tokenLogprobs(seqs, topK): Promise<TokenLogprobs[]> {
      return seqs.map((ids) => {
        const logprobs: (number | null)[] = [null];
        const top: (Map<number, number> | null)[] = [null];
        for (let i = 1; i < ids.length; i++) {
          const lp = logSoftmax(toyLogits(ids[i - 1] as number, vocab));
          logprobs.push(lp[ids[i] as number] as number);
          const order = lp.map((v, t) => [t, v] as [number, number]).sort((a, b) => b[1] - a[1]);
          top.push(new Map(order.slice(0, topK)));
        }
        return { logprobs, top };
      });
    },
  };
  const scoring = {
    name: "toy",
    maxLength,
    async logLikelihood(reqs: LogLikelihoodRequest[]): Promise<LogLikelihoodResult[]> {
      return reqs.map(({ context, continuation }) => {
        let prev = context[context.length - 1] as number;
        let sum = 0;
        let greedy = true;
        for (const t of continuation) {
          const lp = logSoftmax(toyLogits(prev, vocab));
          sum += lp[t] as number;
          if (lp.indexOf(Math.max(...lp)) !== t) greedy = false;
          prev = t;
        }
        return { logprob: sum, isGreedy: greedy };
      });
    },
  };
  const model: ServeModel = { id: "toy", tokenizer, generator, scorer, maxLength };
  return { model, scoring, calls, steps };
}
