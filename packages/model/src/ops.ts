/**
 * The tensor building blocks, written for the WebAssembly backend's fast path: every matrix product is a 2-D,
 * non-transposed `matMul` (XNNPACK), in the forward pass and in the hand-written gradients. Autograd's own
 * matMul gradient uses transposed operands (10-70x slower on wasm), so each product here has a custom gradient
 * that transposes explicitly (a cheap O(n^2) copy) and then multiplies on the fast path.
 */
import * as tf from "@tensorflow/tfjs-core";
import "./gradients.js";

type GradFn = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/** tf.customGrad with plain typing: `f(inputs, save)` returns the value and its gradient function. */
export function customOp(
  f: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => { value: tf.Tensor; gradFunc: GradFn },
): (...inputs: tf.Tensor[]) => tf.Tensor {
  const g = tf.customGrad(((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    return f(args as tf.Tensor[], save);
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (...inputs: tf.Tensor[]) => g(...inputs) as tf.Tensor;
}

/** y = x W with W stored [in, out]; gradient for x and W. */
const linearTrainable = customOp(([x, w], save) => {
  save([x as tf.Tensor, w as tf.Tensor]);
  return {
    value: tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
      return [tf.matMul(dy as tf.Tensor2D, tf.transpose(ws)), tf.matMul(tf.transpose(xs), dy as tf.Tensor2D)];
    },
  };
});

/** The same product when W is frozen: W is kept out of the inputs so no gradient is computed for it. */
function linearFrozen(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  const f = customOp(([xx], save) => {
    save([w]);
    return {
      value: tf.matMul(xx as tf.Tensor2D, w),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.matMul(dy as tf.Tensor2D, tf.transpose(saved[0] as tf.Tensor2D)),
    };
  });
  return f(x) as tf.Tensor2D;
}

function isTrainable(w: tf.Tensor): boolean {
  return w instanceof tf.Variable && w.trainable;
}

/** A linear layer on [rows, in] activations with a weight stored [in, out]. */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D): tf.Tensor2D {
  return (isTrainable(w) ? linearTrainable(x, w) : linearFrozen(x, w)) as tf.Tensor2D;
}

/**
 * Embedding lookup `weight[ids]` ([vocab, hidden] weight, HF layout). wasm has no UnsortedSegmentSum, so the
 * gradient is a scatter-add (ScatterNd sums repeated indices) instead of gather's built-in gradient.
 */
export function embedding(weight: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  if (!isTrainable(weight)) return tf.gather(weight, ids);
  const f = customOp(([w], save) => {
    save([ids]);
    return {
      value: tf.gather(w as tf.Tensor2D, ids),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.scatterND(tf.reshape(saved[0] as tf.Tensor, [-1, 1]), dy, weight.shape),
    };
  });
  return f(weight) as tf.Tensor2D;
}

/**
 * Tied lm_head: logits = h E^T with E the [vocab, hidden] embedding. `embT` is E^T, precomputed when E is
 * frozen. Gradients: dh = dy E (non-transposed), dE = dy^T h.
 */
export function tiedHead(h: tf.Tensor2D, emb: tf.Tensor2D, embT: tf.Tensor2D): tf.Tensor2D {
  if (!isTrainable(emb)) {
    // Frozen E: dh = dy E needs no transpose (E itself is the [vocab, hidden] operand).
    const frozen = customOp(([hh], save) => {
      save([emb]);
      return {
        value: tf.matMul(hh as tf.Tensor2D, embT),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          tf.matMul(dy as tf.Tensor2D, saved[0] as tf.Tensor2D),
      };
    });
    return frozen(h) as tf.Tensor2D;
  }
  const f = customOp(([hh, e], save) => {
    save([hh as tf.Tensor, e as tf.Tensor]);
    return {
      value: tf.matMul(hh as tf.Tensor2D, embT),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [hs, es] = saved as [tf.Tensor2D, tf.Tensor2D];
        return [tf.matMul(dy as tf.Tensor2D, es), tf.matMul(tf.transpose(dy as tf.Tensor2D), hs)];
      },
    };
  });
  return f(h, emb) as tf.Tensor2D;
}

/** HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * weight, all in float32. */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  return tf.tidy(() => {
    const variance = tf.mean(tf.square(x), -1, true);
    return tf.mul(weight, tf.mul(x, tf.rsqrt(tf.add(variance, eps))));
  });
}

/** SiLU(x) = x * sigmoid(x) (tfjs-core has no fused silu). */
export function silu(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, tf.sigmoid(x));
}

/**
 * The [d, d] matrix R with x R = rotate_half(x) = cat(-x[d/2:], x[:d/2]) (HF's convention). A matmul with
 * R replaces the slice + concat that would run as JS copies on wasm.
 */
export function rotateHalfMatrix(d: number): Float32Array {
  const half = d / 2;
  const r = new Float32Array(d * d);
  for (let j = 0; j < half; j++) {
    r[(j + half) * d + j] = -1; // out[j] = -x[j + half]
    r[j * d + j + half] = 1; // out[j + half] = x[j]
  }
  return r;
}

/**
 * HF apply_rotary_pos_emb on x [rows, heads, d] with cos/sin [rows, 1, d]: x cos + rotate_half(x) sin.
 * `rot` is rotateHalfMatrix(d) as a frozen tensor.
 */
export function applyRope(x: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D, rot: tf.Tensor2D): tf.Tensor3D {
  const [rows, heads, d] = x.shape;
  const rotated = tf.reshape(linearFrozen(tf.reshape(x, [rows * heads, d]), rot), [rows, heads, d]);
  return tf.add(tf.mul(x, cos), tf.mul(rotated, sin));
}

/** Up to this many query rows per KV head (decoding), one batched product beats a loop of 2-D ones. */
const SMALL_QUERY_ROWS = 16;

function recordingGradients(): boolean {
  return (tf.engine() as unknown as { state: { gradientDepth: number } }).state.gradientDepth > 0;
}

/**
 * The same attention with 3-D batched products, for decoding: with a handful of query rows the product is
 * tiny, and four ops per layer cost less than the per-head loop's ~8 * B * Hkv op dispatches.
 */
function attentionBatched(
  q: tf.Tensor2D,
  kT: tf.Tensor2D,
  v: tf.Tensor2D,
  masks: tf.Tensor2D[],
  dims: { batch: number; kvHeads: number; groups: number; T: number; S: number; d: number },
): tf.Tensor2D {
  const { batch, kvHeads, groups, T, S, d } = dims;
  return tf.tidy(() => {
    const n = batch * kvHeads;
    const scores = tf.matMul(tf.reshape(q, [n, groups * T, d]), tf.reshape(kT, [n, d, S]));
    const mask =
      masks.length === 1
        ? tf.reshape(masks[0] as tf.Tensor2D, [1, 1, T, S])
        : tf.reshape(tf.stack(masks), [batch, 1, T, S]);
    const p = tf.softmax(tf.add(tf.reshape(scores, [batch, kvHeads * groups, T, S]), mask));
    const out = tf.matMul(tf.reshape(p, [n, groups * T, S]), tf.reshape(v, [n, S, d]));
    return tf.reshape(out, [n, groups * T * d]);
  });
}

/**
 * Scaled dot-product attention for one batch, all heads, as 2-D products per (batch row, KV head).
 *
 * Layouts (GQA: the `groups` query heads of one KV head are stacked, as HF's repeat_kv orders them):
 * - q:  [B * Hkv, groups * T * d], queries already multiplied by 1/sqrt(d)
 * - kT: [B * Hkv, d * S], keys transposed so that scores = q kT is a non-transposed product
 * - v:  [B * Hkv, S * d]
 * - masks: additive [T, S] masks (0 or -1e9), one per batch row or a single shared one
 * Returns the context [B * Hkv, groups * T * d] (= [B, H, T, d]).
 *
 * The gradient is written by hand (softmax backward, with explicit transposes) so it stays on the fast path.
 * `gather` picks one row: it runs in C++ on wasm, where `slice` copies the whole input through JS.
 */
export function attention(
  q: tf.Tensor2D,
  kT: tf.Tensor2D,
  v: tf.Tensor2D,
  masks: tf.Tensor2D[],
  dims: { batch: number; kvHeads: number; groups: number; T: number; S: number; d: number },
): tf.Tensor2D {
  const { batch, kvHeads, groups, T, S, d } = dims;
  const n = batch * kvHeads;
  if (groups * T <= SMALL_QUERY_ROWS && !recordingGradients()) return attentionBatched(q, kT, v, masks, dims);
  const pick = (t: tf.Tensor2D, i: number, shape: [number, number]) =>
    tf.reshape(tf.gather(t, tf.tensor1d([i], "int32")), shape);
  const f = customOp(([qq, kk, vv], save) => {
    const outs: tf.Tensor[] = [];
    const probs: tf.Tensor2D[] = [];
    for (let i = 0; i < n; i++) {
      const mask = (masks.length === 1 ? masks[0] : masks[Math.floor(i / kvHeads)]) as tf.Tensor2D;
      const scores = tf.matMul(
        pick(qq as tf.Tensor2D, i, [groups * T, d]),
        pick(kk as tf.Tensor2D, i, [d, S]),
      );
      const p: tf.Tensor2D = tf.reshape(tf.softmax(tf.add(tf.reshape(scores, [groups, T, S]), mask)), [
        groups * T,
        S,
      ]);
      probs.push(p);
      outs.push(tf.reshape(tf.matMul(p, pick(vv as tf.Tensor2D, i, [S, d])), [1, groups * T * d]));
    }
    save([qq as tf.Tensor, kk as tf.Tensor, vv as tf.Tensor, ...probs]);
    return {
      value: tf.concat(outs, 0),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [qs, ks, vs] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const dq: tf.Tensor[] = [];
        const dk: tf.Tensor[] = [];
        const dv: tf.Tensor[] = [];
        for (let i = 0; i < n; i++) {
          const p = saved[3 + i] as tf.Tensor2D;
          const dOut = pick(dy as tf.Tensor2D, i, [groups * T, d]);
          const qi = pick(qs, i, [groups * T, d]);
          const kTi = pick(ks, i, [d, S]);
          const vi = pick(vs, i, [S, d]);
          dv.push(tf.reshape(tf.matMul(tf.transpose(p), dOut), [1, S * d]));
          const dP = tf.matMul(dOut, tf.transpose(vi));
          // softmax backward: dS = P * (dP - rowsum(dP * P))
          const dS = tf.mul(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true)));
          dq.push(tf.reshape(tf.matMul(dS, tf.transpose(kTi)), [1, groups * T * d]));
          dk.push(tf.reshape(tf.matMul(tf.transpose(qi), dS), [1, d * S]));
        }
        return [tf.concat(dq, 0), tf.concat(dk, 0), tf.concat(dv, 0)];
      },
    };
  });
  return f(q, kT, v) as tf.Tensor2D;
}

/** Rows per chunk so that one chunk's logits stay near 32 MB. */
function chunkRows(vocab: number): number {
  return Math.max(1, Math.floor((8 * 1024 * 1024) / vocab));
}

/**
 * log p(target_i | h_i) for each row i of h [N, E], with logits = h headEV ([E, V]) computed in row chunks, so
 * [N, V] logits never exist at once (at vocab 49152 they dominate a training step's memory). Rows whose target
 * is negative (IGNORE_INDEX) give 0 and no gradient.
 *
 * - `headEV`: the [E, V] head the forward multiplies by (lm_head stored [in, out], or E^T when tied).
 * - `headVE()`: the [V, E] transpose, for dh = g head^T (the embedding itself when tied).
 * - `weight`: the trainable variable behind the head, if any; `tied` says whether its gradient is [V, E].
 */
export function tokenLogProbs(
  h: tf.Tensor2D,
  targets: ArrayLike<number>,
  headEV: tf.Tensor2D,
  headVE: () => tf.Tensor2D,
  weight: tf.Variable | null,
  tied: boolean,
): tf.Tensor1D {
  const [N] = h.shape;
  const V = headEV.shape[1];
  if (targets.length !== N) throw new RangeError(`tokenLogProbs: ${targets.length} targets for ${N} rows`);
  const C = chunkRows(V);
  const chunks: {
    start: number;
    rows: tf.Tensor1D;
    flat: tf.Tensor1D;
    valid: tf.Tensor1D;
    ids: tf.Tensor1D;
  }[] = [];
  const makeChunks = () => {
    for (let s = 0; s < N; s += C) {
      const n = Math.min(C, N - s);
      const flat = new Int32Array(n);
      const valid = new Float32Array(n);
      const ids = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const t = targets[s + i] as number;
        const ok = Number.isInteger(t) && t >= 0 && t < V;
        if (!ok && t >= 0) throw new RangeError(`tokenLogProbs: target ${t} outside the vocabulary of ${V}`);
        ids[i] = ok ? t : 0;
        flat[i] = i * V + (ok ? t : 0);
        valid[i] = ok ? 1 : 0;
      }
      chunks.push({
        start: s,
        rows: tf.range(s, s + n, 1, "int32") as tf.Tensor1D,
        flat: tf.tensor1d(flat, "int32"),
        valid: tf.tensor1d(valid),
        ids: tf.tensor1d(ids, "int32"),
      });
    }
  };
  const run = (inputs: tf.Tensor[], save: tf.GradSaveFunc) => {
    const hh = inputs[0] as tf.Tensor2D;
    const W = (weight !== null && !tied ? inputs[1] : headEV) as tf.Tensor2D;
    makeChunks();
    // One scope per chunk: only its [C] result outlives it.
    const parts = chunks.map((c) =>
      tf.tidy(() => {
        const logits = tf.matMul(tf.gather(hh, c.rows), W);
        const lse = tf.logSumExp(logits, -1);
        const picked = tf.gather(tf.reshape(logits, [-1]), c.flat);
        return tf.mul(tf.sub(picked, lse), c.valid);
      }),
    );
    save([hh, W, ...chunks.flatMap((c) => [c.rows, c.valid, c.ids])]);
    return {
      value: tf.concat(parts, 0),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const hs = saved[0] as tf.Tensor2D;
        const Ws = saved[1] as tf.Tensor2D;
        const back = tied ? headVE() : tf.transpose(Ws);
        let dW: tf.Tensor2D | null = null;
        const dh: tf.Tensor[] = [];
        for (let k = 0; k < chunks.length; k++) {
          const rows = saved[2 + 3 * k] as tf.Tensor1D;
          const valid = saved[3 + 3 * k] as tf.Tensor1D;
          const ids = saved[4 + 3 * k] as tf.Tensor1D;
          const prev: tf.Tensor2D | null = dW;
          const [dhc, dWc] = tf.tidy(() => {
            const hc = tf.gather(hs, rows);
            const p = tf.softmax(tf.matMul(hc, Ws));
            // d logp / d logits = onehot(target) - softmax
            const g = tf.mul(
              tf.sub(tf.oneHot(ids, V), p),
              tf.reshape(tf.mul(tf.gather(dy, rows), valid), [-1, 1]),
            ) as tf.Tensor2D;
            const dhPart = tf.matMul(g, back);
            if (weight === null) return [dhPart];
            const part: tf.Tensor2D = tied ? tf.matMul(tf.transpose(g), hc) : tf.matMul(tf.transpose(hc), g);
            return [dhPart, prev === null ? part : (tf.add(prev, part) as tf.Tensor2D)];
          }) as tf.Tensor2D[];
          if (prev !== null) prev.dispose();
          dh.push(dhc as tf.Tensor2D);
          dW = dWc ?? null;
        }
        const dhAll = tf.concat(dh, 0);
        return weight !== null ? [dhAll, dW as unknown as tf.Tensor] : [dhAll];
      },
    };
  };
  try {
    const op = customOp(run);
    return (weight !== null ? op(h, weight) : op(h)) as tf.Tensor1D;
  } finally {
    for (const c of chunks) tf.dispose([c.rows, c.flat, c.valid, c.ids]);
  }
}
