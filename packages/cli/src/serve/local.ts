/**
 * The local TensorFlow.js model's per-token log-probabilities (and the top-k at each position), which `echo`
 * + `logprobs` need and the core ScoringModel (summed log-likelihoods) does not give: the model package's
 * `tokenLogprobs`, the one implementation of it.
 */
import { HippoError } from "@hippocrates/core";
import { type CausalLM, tokenLogprobs } from "@hippocrates/model";
import type { PromptScorer } from "./types.js";

/**
 * Log-probs of every token given its prefix. A sequence longer than `maxLength` is refused: the server never
 * sends one (prompt + completion is checked against it first), and scoring past the model's positions would be
 * numbers from positions it was never trained on.
 */
export function localPromptScorer(model: CausalLM, maxLength: number): PromptScorer {
  return {
    async tokenLogprobs(sequences, topK, signal) {
      sequences.forEach((s, row) => {
        if (s.length > maxLength)
          throw new HippoError("INVALID_ARGUMENT", "sequence longer than the model's maximum length", {
            row,
            expected: `at most ${maxLength} tokens`,
            got: `${s.length}`,
          });
      });
      // `logprobs` asks for up to 20 alternatives; a model with fewer tokens has no more to give.
      return tokenLogprobs(model, sequences, Math.min(topK, model.dims.vocab), signal ? { signal } : {});
    },
  };
}
