/**
 * Losses computed from logits: next-token cross-entropy with IGNORE_INDEX masking, sequence log-probabilities
 * of the response tokens (DPO), and TRL's DPO losses.
 *
 * Shift as HF: the logit at position t predicts label t+1. Instead of slicing the (large) logits tensor we shift
 * the labels in JS (`shiftLabels`), so position t's target is `labels[t + 1]` and the last position is ignored;
 * the result is the same as HF's `logits[:, :-1]` vs `labels[:, 1:]`.
 *
 * `sequenceLogProbs` carries a custom gradient (softmax - one-hot, per token): it avoids both the `gather`
 * gradient (no UnsortedSegmentSum kernel on wasm) and keeping a [tokens, vocab] log-softmax on the tape.
 */
import { HippoError, IGNORE_INDEX } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import "./gradients.js";

/** Targets aligned with the logits: `targets[b * T + t] = labels[b][t + 1]`, IGNORE_INDEX at t = T - 1. */
export function shiftLabels(labels: readonly (readonly number[])[], seqLen?: number): Int32Array {
  const T = seqLen ?? Math.max(0, ...labels.map((l) => l.length));
  const out = new Int32Array(labels.length * T).fill(IGNORE_INDEX);
  labels.forEach((row, b) => {
    for (let t = 0; t + 1 < row.length && t + 1 < T; t++) out[b * T + t] = row[t + 1] as number;
  });
  return out;
}

/** Number of positions that take a loss. */
export function countTargets(targets: Int32Array): number {
  let n = 0;
  for (const y of targets) if (y !== IGNORE_INDEX) n++;
  return n;
}

/**
 * For each sequence b, the sum over positions t with targets[b, t] != IGNORE_INDEX of
 * log softmax(logits[b, t])[targets[b, t]]. Shape [batch]. Differentiable with respect to `logits`.
 * Log-softmax is computed stably as x - logsumexp(x) (logsumexp subtracts the row max).
 */
export function sequenceLogProbs(logits: tf.Tensor, targets: Int32Array): tf.Tensor1D {
  if (logits.rank !== 3)
    throw new HippoError("INVALID_ARGUMENT", "logits must be [batch, seq, vocab]", {
      got: `rank ${logits.rank}`,
    });
  const [B, T, V] = logits.shape as [number, number, number];
  const N = B * T;
  if (targets.length !== N)
    throw new HippoError("INVALID_ARGUMENT", "targets must have batch x seq entries", {
      expected: String(N),
      got: String(targets.length),
    });
  const mask = new Float32Array(N);
  const flatIndex = new Int32Array(N);
  const clamped = new Int32Array(N);
  for (let n = 0; n < N; n++) {
    const y = targets[n] as number;
    if (y === IGNORE_INDEX) continue;
    if (!Number.isInteger(y) || y < 0 || y >= V)
      throw new HippoError("INVALID_ARGUMENT", "label outside the vocabulary", {
        row: Math.floor(n / T),
        expected: `0..${V - 1} or ${IGNORE_INDEX}`,
        got: String(y),
      });
    mask[n] = 1;
    clamped[n] = y;
    flatIndex[n] = n * V + y;
  }
  const forward = (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const x2 = tf.reshape(x, [N, V]);
    const lse = tf.logSumExp(x2, 1);
    const picked = tf.gather(tf.reshape(x2, [N * V]), tf.tensor1d(flatIndex, "int32"));
    const tokenLogp = tf.mul(tf.sub(picked, lse), tf.tensor1d(mask));
    save([x2, lse]);
    return {
      value: tf.sum(tf.reshape(tokenLogp, [B, T]), 1),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const [xs, l] = saved as [tf.Tensor2D, tf.Tensor1D];
        // d/dx_t of mask_t * (x_t[y_t] - logsumexp(x_t)) = mask_t * (onehot(y_t) - softmax(x_t)), times dy[b].
        const softmax = tf.exp(tf.sub(xs, tf.reshape(l, [N, 1])));
        const weight = tf.reshape(
          tf.mul(tf.reshape(tf.tile(tf.reshape(dy as tf.Tensor, [B, 1]), [1, T]), [N]), tf.tensor1d(mask)),
          [N, 1],
        );
        const g = tf.mul(tf.sub(tf.oneHot(tf.tensor1d(clamped, "int32"), V), softmax), weight);
        return [tf.reshape(g, [B, T, V])];
      },
    };
  };
  const op = tf.customGrad(forward);
  return op(logits) as tf.Tensor1D;
}

/**
 * Summed next-token cross-entropy over the non-ignored positions (a scalar). Like every loss here it creates
 * intermediate tensors: call it inside a gradient tape or a tf.tidy.
 * Divide by the token count of the whole optimizer batch to get HF's mean per token (see README: accumulation).
 */
export function crossEntropySum(logits: tf.Tensor, targets: Int32Array): tf.Scalar {
  return tf.neg(tf.sum(sequenceLogProbs(logits, targets))) as tf.Scalar;
}

/** Mean next-token cross-entropy per non-ignored token (HF `ForCausalLMLoss` with reduction "mean"). */
export function crossEntropyMean(logits: tf.Tensor, targets: Int32Array): tf.Scalar {
  const n = countTargets(targets);
  return tf.div(crossEntropySum(logits, targets), Math.max(1, n)) as tf.Scalar;
}

// ---------------------------------------------------------------------------------------------------------
// DPO, as TRL's `DPOTrainer.dpo_loss`.

/**
 * log(sigmoid(x)) = -softplus(-x), stable for large |x|. (tf.logSigmoid's custom gradient reads its input
 * through a closure, which tfjs disposes before the backward pass when the op runs inside a tidy or tape.)
 */
function logSigmoid(x: tf.Tensor): tf.Tensor {
  return tf.neg(tf.softplus(tf.neg(x)));
}

export type DpoLossType = "sigmoid" | "ipo" | "hinge";

export interface DpoLossConfig {
  /** Default 0.1 (TRL). */
  beta?: number;
  lossType?: DpoLossType;
  /** cDPO label smoothing for the sigmoid loss, in [0, 0.5). Default 0. */
  labelSmoothing?: number;
}

export interface DpoLossOutput {
  /** Per-pair losses [batch] (differentiable through the policy log-probs). */
  losses: tf.Tensor1D;
  /** beta * (policy - reference) log-probs: [batch]. Metrics only (TRL detaches them; here they never enter the loss). */
  chosenRewards: tf.Tensor1D;
  rejectedRewards: tf.Tensor1D;
}

/**
 *   logits = (pi_chosen - pi_rejected) - (ref_chosen - ref_rejected)
 *   sigmoid: -logsigmoid(beta * logits) * (1 - ls) - logsigmoid(-beta * logits) * ls
 *   hinge:   relu(1 - beta * logits)
 *   ipo:     (logits - 1 / (2 * beta))^2          (TRL feeds IPO per-token mean log-probs, see dpoLogProbs)
 */
export function dpoLoss(
  policyChosen: tf.Tensor1D,
  policyRejected: tf.Tensor1D,
  referenceChosen: tf.Tensor1D,
  referenceRejected: tf.Tensor1D,
  config: DpoLossConfig = {},
): DpoLossOutput {
  const beta = config.beta ?? 0.1;
  const type = config.lossType ?? "sigmoid";
  const ls = config.labelSmoothing ?? 0;
  // Callers run this inside a gradient tape or a tf.tidy.
  {
    const logits = tf.sub(tf.sub(policyChosen, policyRejected), tf.sub(referenceChosen, referenceRejected));
    let losses: tf.Tensor;
    if (type === "sigmoid") {
      const z = tf.mul(logits, beta);
      losses = tf.sub(tf.mul(logSigmoid(z), -(1 - ls)), tf.mul(logSigmoid(tf.neg(z)), ls));
    } else if (type === "hinge") {
      losses = tf.relu(tf.sub(1, tf.mul(logits, beta)));
    } else if (type === "ipo") {
      losses = tf.square(tf.sub(logits, 1 / (2 * beta)));
    } else {
      throw new HippoError("INVALID_CONFIG", "unknown DPO loss type", {
        key: "lossType",
        expected: "sigmoid | ipo | hinge",
        got: String(type),
      });
    }
    const chosenRewards = tf.mul(tf.sub(policyChosen, referenceChosen), beta);
    const rejectedRewards = tf.mul(tf.sub(policyRejected, referenceRejected), beta);
    return {
      losses: losses as tf.Tensor1D,
      chosenRewards: chosenRewards as tf.Tensor1D,
      rejectedRewards: rejectedRewards as tf.Tensor1D,
    };
  }
}

/** TRL's logged metrics, from per-pair numbers (means over the pairs). */
export function dpoMetrics(p: {
  chosenRewards: ArrayLike<number>;
  rejectedRewards: ArrayLike<number>;
  policyChosen: ArrayLike<number>;
  policyRejected: ArrayLike<number>;
}): Record<string, number> {
  const n = p.chosenRewards.length;
  const mean = (f: (i: number) => number) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += f(i);
    return n > 0 ? s / n : 0;
  };
  const c = (i: number) => p.chosenRewards[i] as number;
  const r = (i: number) => p.rejectedRewards[i] as number;
  return {
    "rewards/chosen": mean(c),
    "rewards/rejected": mean(r),
    "rewards/accuracies": mean((i) => (c(i) > r(i) ? 1 : 0)),
    "rewards/margins": mean((i) => c(i) - r(i)),
    "logps/chosen": mean((i) => p.policyChosen[i] as number),
    "logps/rejected": mean((i) => p.policyRejected[i] as number),
  };
}
