/**
 * From prompt strings to token requests, as lm-evaluation-harness does it:
 * - split (`_encode_pair`): trailing whitespace of the context moves to the front of the continuation;
 *   whole = encode(context + continuation), ctx = encode(context), continuation tokens = whole[len(ctx):];
 *   encoding never adds special tokens (the fork encodes with add_special_tokens=False);
 * - an empty context becomes [EOT] (the EOS id), as `loglikelihood` does;
 * - BOS policy: "none" (v0.3) or "bos" (prepend the BOS id to the context, as the current harness does);
 * - left truncation, done here on the token lists so every ScoringModel gets requests that fit:
 *   the harness feeds (ctx + cont)[-(max_length + 1):][:-1] and scores the last len(cont) positions, which is
 *   the same as scoring cont after the context (ctx + cont)[-(max_length + 1):-len(cont)].
 */
import { HippoError, type LogLikelihoodRequest } from "@hippocrates/core";
import { moveTrailingWhitespace } from "@hippocrates/tokenizer";

export type BosPolicy = "none" | "bos";

/** What the evaluation needs from a tokenizer (`@hippocrates/tokenizer`'s HfTokenizer fits). */
export interface EvalTokenizer {
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Recorded in the results (`tokenizer_*_token`) when the tokenizer has them. */
  readonly padTokenId?: number | null;
  readonly bosToken?: string | null;
  readonly eosToken?: string | null;
  readonly padToken?: string | null;
  encode(text: string, options?: { addSpecialTokens?: boolean }): Promise<number[]>;
}

export interface TokenizedRequest extends LogLikelihoodRequest {
  /** True when the context was cut from the left to fit the model. */
  truncated: boolean;
}

/**
 * Tokenize all continuations of one context. The context is encoded once (the harness encodes it per
 * continuation; the result is the same).
 */
export async function encodeDocRequests(
  tokenizer: EvalTokenizer,
  context: string,
  continuations: readonly string[],
  opts: { bos: BosPolicy; maxLength: number },
): Promise<TokenizedRequest[]> {
  const encode = (t: string) => tokenizer.encode(t, { addSpecialTokens: false });
  const ctxCache = new Map<string, number[]>();
  const out: TokenizedRequest[] = [];
  for (const continuation of continuations) {
    if (continuation.length === 0)
      throw new HippoError("INVALID_ARGUMENT", "empty continuation", { key: "continuation" });
    let ctxIds: number[];
    let contIds: number[];
    if (context === "") {
      if (tokenizer.eosTokenId === null)
        throw new HippoError("UNSUPPORTED", "an empty context needs an EOS token as the harness's EOT");
      ctxIds = opts.bos === "bos" ? [] : [tokenizer.eosTokenId];
      contIds = await encode(continuation);
    } else {
      const [ctx, cont] = moveTrailingWhitespace(context, continuation);
      let c = ctxCache.get(ctx);
      if (!c) {
        c = await encode(ctx);
        ctxCache.set(ctx, c);
      }
      ctxIds = c;
      const whole = await encode(ctx + cont);
      contIds = whole.slice(ctxIds.length);
    }
    if (opts.bos === "bos") {
      if (tokenizer.bosTokenId === null)
        throw new HippoError("UNSUPPORTED", 'BOS policy "bos" but the tokenizer has no BOS token');
      ctxIds = [tokenizer.bosTokenId, ...ctxIds];
    }
    out.push(truncateRequest(ctxIds, contIds, opts.maxLength));
  }
  return out;
}

export function truncateRequest(
  context: number[],
  continuation: number[],
  maxLength: number,
): TokenizedRequest {
  if (continuation.length === 0)
    throw new HippoError("INVALID_ARGUMENT", "the continuation has no tokens of its own", {
      key: "continuation",
    });
  if (continuation.length > maxLength) {
    throw new HippoError("INVALID_ARGUMENT", "continuation longer than the model's maximum length", {
      expected: `<= ${maxLength} tokens`,
      got: String(continuation.length),
    });
  }
  const whole = context.length + continuation.length;
  if (whole <= maxLength + 1) return { context, continuation, truncated: false };
  return { context: context.slice(whole - (maxLength + 1)), continuation, truncated: true };
}
