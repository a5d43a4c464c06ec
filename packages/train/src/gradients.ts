/**
 * Gradient registrations the losses need. tfjs-core registers none by itself, and its
 * `dist/register_all_gradients.js` cannot be loaded by Node's ESM loader (tsx, the CLI). @hippocrates/model
 * registers the arithmetic/shape kernels its forward uses (importing it is enough); the DPO losses add Softplus
 * (log-sigmoid) and Relu (hinge). Each is registered only where tfjs has none yet.
 */
import "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";

const configs: tf.GradConfig[] = [
  {
    kernelName: "Softplus",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({ x: () => tf.mul(dy as tf.Tensor, tf.sigmoid(saved[0] as tf.Tensor)) }),
  },
  {
    kernelName: "Relu",
    inputsToSave: ["x"],
    gradFunc: (dy, saved) => ({ x: () => tf.mul(dy as tf.Tensor, tf.step(saved[0] as tf.Tensor)) }),
  },
];

for (const c of configs) if (tf.getGradient(c.kernelName) === undefined) tf.registerGradient(c);
