/**
 * Gradients of the elementwise/shape kernels the forward pass (and a usual loss on its logits) goes through.
 *
 * tfjs-core registers no gradients by itself; `@tensorflow/tfjs-core/dist/register_all_gradients.js` would,
 * but that file belongs to tfjs-core's ESM tree, which Node's ESM loader (tsx, the CLI) cannot load (it
 * imports the directory `./gradients`). So the few kernels needed are registered here, with tfjs's own
 * semantics, and only where no gradient is registered yet (an app that loads tfjs's full set keeps it).
 * Matrix products, attention, the embedding and the tied head have custom gradients in ops.ts.
 */
import * as tf from "@tensorflow/tfjs-core";

type Saved = tf.Tensor[];

/** Sum dy over the axes along which `shape` was broadcast to dy's shape, then reshape to `shape`. */
function unbroadcast(dy: tf.Tensor, shape: number[]): tf.Tensor {
  const out = dy.shape;
  const axes: number[] = [];
  const lead = out.length - shape.length;
  for (let i = 0; i < out.length; i++) {
    const j = i - lead;
    if (j < 0 || (shape[j] === 1 && (out[i] as number) !== 1)) axes.push(i);
  }
  const summed = axes.length > 0 ? tf.sum(dy, axes) : dy;
  return tf.reshape(summed, shape);
}

function binary(
  kernelName: string,
  da: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
  db: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ["a", "b"],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: Saved) => {
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      const g = dy as tf.Tensor;
      return { a: () => unbroadcast(da(g, a, b), a.shape), b: () => unbroadcast(db(g, a, b), b.shape) };
    },
  };
}

function unary(kernelName: string, dx: (dy: tf.Tensor, x: tf.Tensor) => tf.Tensor): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ["x"],
    gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: Saved) => ({
      x: () => dx(dy as tf.Tensor, saved[0] as tf.Tensor),
    }),
  };
}

/** dy of a reduction, broadcast back over the reduced axes of x. */
function expandReduced(dy: tf.Tensor, x: tf.Tensor, axis: number | number[] | undefined | null): tf.Tensor {
  const rank = x.shape.length;
  const axes = (
    axis === undefined || axis === null ? [...Array(rank).keys()] : Array.isArray(axis) ? axis : [axis]
  ).map((a) => (a < 0 ? a + rank : a));
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  return tf.mul(tf.reshape(dy, kept), tf.onesLike(x));
}

function reducedCount(x: tf.Tensor, axis: number | number[] | undefined | null): number {
  const rank = x.shape.length;
  const axes = (
    axis === undefined || axis === null ? [...Array(rank).keys()] : Array.isArray(axis) ? axis : [axis]
  ).map((a) => (a < 0 ? a + rank : a));
  return axes.reduce((n, a) => n * (x.shape[a] as number), 1);
}

const CONFIGS: tf.GradConfig[] = [
  binary(
    "Add",
    (dy) => dy,
    (dy) => dy,
  ),
  binary(
    "Sub",
    (dy) => dy,
    (dy) => tf.neg(dy),
  ),
  binary(
    "Multiply",
    (dy, _a, b) => tf.mul(dy, b),
    (dy, a) => tf.mul(dy, a),
  ),
  binary(
    "RealDiv",
    (dy, _a, b) => tf.div(dy, b),
    (dy, a, b) => tf.neg(tf.div(tf.mul(dy, a), tf.square(b))),
  ),
  unary("Neg", (dy) => tf.neg(dy)),
  unary("Square", (dy, x) => tf.mul(dy, tf.mul(x, 2))),
  unary("Sqrt", (dy, x) => tf.div(dy, tf.mul(tf.sqrt(x), 2))),
  unary("Rsqrt", (dy, x) => tf.neg(tf.div(dy, tf.mul(tf.mul(x, tf.sqrt(x)), 2)))),
  unary("Exp", (dy, x) => tf.mul(dy, tf.exp(x))),
  unary("Log", (dy, x) => tf.div(dy, x)),
  unary("Sigmoid", (dy, x) => {
    const y = tf.sigmoid(x);
    return tf.mul(dy, tf.mul(y, tf.sub(1, y)));
  }),
  unary("Identity", (dy) => dy),
  unary("Cast", (dy) => dy),
  {
    kernelName: "Reshape",
    inputsToSave: ["x"],
    gradFunc: (dy, saved: Saved) => ({ x: () => tf.reshape(dy as tf.Tensor, (saved[0] as tf.Tensor).shape) }),
  },
  {
    kernelName: "Transpose",
    gradFunc: (dy, _saved, attrs) => {
      const perm = (attrs as { perm: number[] }).perm;
      const inverse = new Array<number>(perm.length);
      perm.forEach((p, i) => {
        inverse[p] = i;
      });
      return { x: () => tf.transpose(dy as tf.Tensor, inverse) };
    },
  },
  {
    kernelName: "Sum",
    inputsToSave: ["x"],
    gradFunc: (dy, saved: Saved, attrs) => {
      const { axis } = attrs as { axis: number | number[] };
      return { x: () => expandReduced(dy as tf.Tensor, saved[0] as tf.Tensor, axis) };
    },
  },
  {
    kernelName: "Mean",
    inputsToSave: ["x"],
    gradFunc: (dy, saved: Saved, attrs) => {
      const { axis } = attrs as { axis: number | number[] };
      const x = saved[0] as tf.Tensor;
      return { x: () => tf.div(expandReduced(dy as tf.Tensor, x, axis), reducedCount(x, axis)) };
    },
  },
  {
    kernelName: "Slice",
    inputsToSave: ["x"],
    gradFunc: (dy, saved: Saved, attrs) => {
      const x = saved[0] as tf.Tensor;
      // tf.slice takes begin/size as numbers (first axis) or shorter arrays: normalise as tfjs's
      // parseSliceParams does (missing begin = 0, missing size = -1 = "to the end").
      const raw = attrs as { begin: number | number[]; size?: number | number[] };
      const begin = typeof raw.begin === "number" ? [raw.begin] : raw.begin;
      const size = raw.size === undefined ? [] : typeof raw.size === "number" ? [raw.size] : raw.size;
      const g = dy as tf.Tensor;
      const pads = x.shape.map((d, i) => {
        const b = begin[i] ?? 0;
        const s = (size[i] ?? -1) === -1 ? d - b : (size[i] as number);
        return [b, d - b - s] as [number, number];
      });
      return { x: () => tf.pad(g, pads) };
    },
  },
];

let registered = false;

/** Register the gradients above where tfjs has none yet. Idempotent. */
export function registerModelGradients(): void {
  if (registered) return;
  registered = true;
  for (const c of CONFIGS) if (tf.getGradient(c.kernelName) === undefined) tf.registerGradient(c);
}

registerModelGradients();
