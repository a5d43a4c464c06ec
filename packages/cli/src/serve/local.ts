/**
 * The local TensorFlow.js model behind the server: per-token log-probabilities (and the top-k at each
 * position) from one forward pass over the sequence, which `echo` + `logprobs` need and the core
 * ScoringModel (summed log-likelihoods) does not give.
 */
import { type CausalLM, logSoftmaxRows } from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";
import type { PromptScorer, TokenLogprobs } from "./types.js";

/** Log-probs of every token given its prefix; sequences longer than `maxLength` are scored in windows. */
export function localPromptScorer(model: CausalLM, maxLength: number): PromptScorer {
  return {
    async tokenLogprobs(sequences, topK) {
      const out: TokenLogprobs[] = [];
      for (const ids of sequences) {
        const logprobs: (number | null)[] = [null];
        const top: (Map<number, number> | null)[] = [null];
        // Window [start, end): positions start+1..end-1 are scored with the window as context (the harness's
        // rolling windows; a window is never longer than the model's length).
        for (let start = 0; start < ids.length - 1; start += maxLength - 1) {
          const window = ids.slice(start, start + maxLength);
          const [lp, topVals, topIdx] = tf.tidy(() => {
            const logits = model.forward([window], { logits: "all" }).logits as tf.Tensor3D;
            const logp = logSoftmaxRows(tf.squeeze(logits, [0]) as tf.Tensor2D);
            const rows = window.length - 1;
            const prev = tf.slice(logp, [0, 0], [rows, -1]);
            const targets = tf.tensor1d(window.slice(1), "int32");
            const picked = tf.sum(tf.mul(prev, tf.oneHot(targets, logp.shape[1])), 1);
            const k = Math.max(1, Math.min(topK, logp.shape[1]));
            const t = tf.topk(prev, k);
            return [picked, t.values, t.indices];
          });
          const [a, v, idx] = await Promise.all([lp.data(), topVals.data(), topIdx.data()]);
          tf.dispose([lp, topVals, topIdx]);
          const k = topVals.shape[1] as number;
          for (let r = 0; r < a.length; r++) {
            logprobs.push(a[r] as number);
            const m = new Map<number, number>();
            for (let j = 0; j < (topK === 0 ? 0 : k); j++)
              m.set(idx[r * k + j] as number, v[r * k + j] as number);
            top.push(m);
          }
          if (start + maxLength >= ids.length) break;
        }
        out.push({ logprobs, top });
      }
      return out;
    },
  };
}
