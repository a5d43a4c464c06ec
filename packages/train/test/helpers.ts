/**
 * A tiny language model for testing the training machinery without @hippocrates/model: token -> embedding ->
 * tanh MLP -> logits, plus a "previous token" term so that positions interact (the mask/segment tests of the
 * real model live in model-integration tests). Built from plain tf ops and tf.Variables.
 */
import "@tensorflow/tfjs-backend-cpu";
// The MLP uses tanh and plain matMul, whose gradients only tfjs's full set has (vitest can load it; Node's ESM
// loader cannot, see src/gradients.ts).
import "@tensorflow/tfjs-core/dist/register_all_gradients.js";
import { createRng } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import type { TrainableLM } from "../src/model.js";

await tf.setBackend("cpu");

let counter = 0;

export interface MlpLm extends TrainableLM {
  variables: tf.Variable[];
  names: string[];
  dispose(): void;
}

export function createMlpLm(vocab: number, hidden: number, seed: number): MlpLm {
  const rng = createRng(seed);
  const id = counter++;
  const init = (shape: number[], scale: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.normal() * scale;
    return tf.tensor(data, shape);
  };
  const names = ["embed", "w1", "b1", "w2"];
  const shapes = [[vocab, hidden], [hidden, hidden], [hidden], [hidden, vocab]];
  const variables = names.map((n, i) => {
    const t = init(shapes[i] as number[], i === 2 ? 0.1 : 0.5);
    const v = tf.variable(t, true, `mlp${id}.${n}`);
    t.dispose();
    return v;
  });
  const [embed, w1, b1, w2] = variables as [tf.Variable, tf.Variable, tf.Variable, tf.Variable];
  return {
    variables,
    names,
    forward(inputIds) {
      const logits = tf.tidy(() => {
        const B = inputIds.length;
        const T = inputIds[0]?.length ?? 0;
        const oh = tf.oneHot(tf.tensor1d(inputIds.flat(), "int32"), vocab);
        const e = tf.matMul(oh, embed);
        const h = tf.tanh(tf.add(tf.matMul(e, w1), b1));
        return tf.reshape(tf.matMul(h, w2), [B, T, vocab]) as tf.Tensor3D;
      });
      return { logits };
    },
    dispose() {
      for (const v of variables) v.dispose();
    },
  };
}

export async function weightsOf(vars: readonly tf.Variable[]): Promise<Float32Array[]> {
  return Promise.all(vars.map(async (v) => (await v.data()) as Float32Array));
}

export function maxAbsDiff(a: readonly Float32Array[], b: readonly Float32Array[]): number {
  let m = 0;
  a.forEach((x, i) => {
    const y = b[i] as Float32Array;
    for (let j = 0; j < x.length; j++) m = Math.max(m, Math.abs((x[j] as number) - (y[j] as number)));
  });
  return m;
}
