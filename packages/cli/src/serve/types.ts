/**
 * What the server needs from a model: the core interfaces (`GenerativeModel`, `ScoringModel`,
 * `TextTokenizer`) and, for `logprobs`, per-token log-probabilities of a sequence (the model package's
 * `TokenLogprobs`). A model that only has `logLikelihood` gets them through `scorerFromScoringModel` (one
 * request per token, exact but slower).
 */
import type { ChatMessage, GenerativeModel, ScoringModel, TextTokenizer } from "@hippocrates/core";
import type { TokenLogprobs } from "@hippocrates/model";

export interface PromptScorer {
  /** Per-token log-probs of each sequence and the `topK` most likely tokens at each position. */
  tokenLogprobs(sequences: number[][], topK: number, signal?: AbortSignal): Promise<TokenLogprobs[]>;
}

export interface ServeTokenizer extends TextTokenizer {
  applyChatTemplate?(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
  encodeWithOffsets?(
    text: string,
    options?: { addSpecialTokens?: boolean },
  ): Promise<{ ids: number[]; offsets: [number, number][] }>;
}

export interface ServeModel {
  /** The id `/v1/models` lists and requests name. */
  id: string;
  tokenizer: ServeTokenizer;
  generator: GenerativeModel;
  scorer: PromptScorer;
  /** Longest sequence (prompt + completion). */
  maxLength: number;
}

/**
 * Per-token log-probs from any ScoringModel: token i is scored as the continuation of tokens 0..i-1. The
 * "top" list then holds only the actual token (a ScoringModel does not expose the distribution).
 */
export function scorerFromScoringModel(model: ScoringModel): PromptScorer {
  return {
    async tokenLogprobs(sequences, _topK, signal) {
      const requests = sequences.flatMap((ids) =>
        ids.slice(1).map((id, i) => ({ context: ids.slice(0, i + 1), continuation: [id] })),
      );
      const results = await model.logLikelihood(requests, signal ? { signal } : {});
      let k = 0;
      return sequences.map((ids) => {
        const logprobs: (number | null)[] = [null];
        const top: (Map<number, number> | null)[] = [null];
        for (let i = 1; i < ids.length; i++) {
          const lp = (results[k++] as { logprob: number }).logprob;
          logprobs.push(lp);
          top.push(new Map([[ids[i] as number, lp]]));
        }
        return { logprobs, top };
      });
    },
  };
}
