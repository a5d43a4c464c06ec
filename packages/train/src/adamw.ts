/**
 * AdamW (Loshchilov & Hutter) with decoupled weight decay and bias correction, written from tf ops because
 * tfjs only ships Adam with coupled L2. Same update as `torch.optim.AdamW`:
 *
 *   p <- p * (1 - lr * weightDecay)
 *   m <- beta1 * m + (1 - beta1) * g
 *   v <- beta2 * v + (1 - beta2) * g^2
 *   p <- p - lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 *
 * The optimizer is a plain object over a fixed list of variables; its state (moments and step) can be exported
 * to typed arrays for a checkpoint and imported back, so a resumed run continues bit for bit.
 */
import { HippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";

export interface AdamWConfig {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (HF `weight_decay`, default 0 as HF's TrainingArguments). */
  weightDecay?: number;
  /**
   * Which variables get weight decay; HF exempts biases and norm weights. Default: every variable whose name does
   * not contain "norm" or "bias".
   */
  decay?: (variable: tf.Variable, index: number) => boolean;
}

export interface AdamWState {
  step: number;
  /** First and second moments, one pair per variable, in the variables' order. */
  m: Float32Array[];
  v: Float32Array[];
}

export interface AdamW {
  readonly variables: readonly tf.Variable[];
  /** Updates done so far (PyTorch's `state["step"]`). */
  readonly step: number;
  /** One update. `grads[i]` belongs to `variables[i]`; the caller keeps ownership of the gradients. */
  apply(grads: readonly tf.Tensor[], lr: number): void;
  exportState(): Promise<AdamWState>;
  importState(state: AdamWState): void;
  dispose(): void;
}

const defaultDecay = (v: tf.Variable) => !/norm|bias/i.test(v.name);

export function createAdamW(variables: readonly tf.Variable[], config: AdamWConfig = {}): AdamW {
  const beta1 = config.beta1 ?? 0.9;
  const beta2 = config.beta2 ?? 0.999;
  const eps = config.eps ?? 1e-8;
  const weightDecay = config.weightDecay ?? 0;
  const decayOf = config.decay ?? defaultDecay;
  const decays = variables.map((v, i) => weightDecay > 0 && decayOf(v, i));
  // Moments are variables too, so assign() replaces their buffers without leaking the old ones.
  const m = variables.map((v) => tf.variable(tf.zerosLike(v), false));
  const s = variables.map((v) => tf.variable(tf.zerosLike(v), false));
  let step = 0;

  return {
    variables,
    get step() {
      return step;
    },
    apply(grads, lr) {
      if (grads.length !== variables.length)
        throw new HippoError("INVALID_ARGUMENT", "one gradient per variable", {
          expected: String(variables.length),
          got: String(grads.length),
        });
      step += 1;
      const bc1 = 1 - beta1 ** step;
      const bc2 = 1 - beta2 ** step;
      tf.tidy(() => {
        for (let i = 0; i < variables.length; i++) {
          const p = variables[i] as tf.Variable;
          const g = grads[i] as tf.Tensor;
          const mi = m[i] as tf.Variable;
          const vi = s[i] as tf.Variable;
          const mNew = tf.add(tf.mul(mi, beta1), tf.mul(g, 1 - beta1));
          const vNew = tf.add(tf.mul(vi, beta2), tf.mul(tf.square(g), 1 - beta2));
          const denom = tf.add(tf.div(tf.sqrt(vNew), Math.sqrt(bc2)), eps);
          let pNew: tf.Tensor = decays[i] ? tf.mul(p, 1 - lr * weightDecay) : p;
          pNew = tf.sub(pNew, tf.mul(tf.div(mNew, denom), lr / bc1));
          mi.assign(mNew);
          vi.assign(vNew);
          p.assign(pNew);
        }
      });
    },
    async exportState() {
      const mm: Float32Array[] = [];
      const vv: Float32Array[] = [];
      for (let i = 0; i < variables.length; i++) {
        mm.push((await (m[i] as tf.Variable).data()) as Float32Array);
        vv.push((await (s[i] as tf.Variable).data()) as Float32Array);
      }
      return { step, m: mm, v: vv };
    },
    importState(state) {
      if (!Number.isInteger(state.step) || state.step < 0)
        throw new HippoError("INVALID_FORMAT", "optimizer step must be a non-negative integer", {
          key: "step",
          got: String(state.step),
        });
      if (state.m.length !== variables.length || state.v.length !== variables.length)
        throw new HippoError("INVALID_FORMAT", "optimizer state does not match the trainable variables", {
          key: "moments",
          expected: String(variables.length),
          got: `${state.m.length}/${state.v.length}`,
        });
      for (let i = 0; i < variables.length; i++) {
        const p = variables[i] as tf.Variable;
        for (const [name, arr, target] of [
          ["m", state.m[i], m[i]],
          ["v", state.v[i], s[i]],
        ] as const) {
          if (!arr || arr.length !== p.size)
            throw new HippoError("INVALID_FORMAT", "optimizer moment has the wrong size", {
              key: `${name}[${i}]`,
              expected: String(p.size),
              got: String(arr?.length),
            });
          tf.tidy(() => (target as tf.Variable).assign(tf.tensor(arr, p.shape, "float32")));
        }
      }
      step = state.step;
    },
    dispose() {
      for (const t of [...m, ...s]) t.dispose();
    },
  };
}
