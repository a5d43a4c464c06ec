/**
 * The tensor building blocks, written for the WebAssembly backend's fast path: every matrix product is a 2-D,
 * non-transposed `matMul` (XNNPACK), in the forward pass and in the hand-written gradients. Autograd's own
 * matMul gradient uses transposed operands (10-70x slower on wasm), so each product here has a custom gradient
 * that transposes explicitly (a cheap O(n^2) copy) and then multiplies on the fast path.
 */
import * as tf from "@tensorflow/tfjs-core";
import { isRecording } from "./engine.js";
import type { AttentionBlock } from "./step.js";
import "./gradients.js";

type GradFn = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/** tf.customGrad with plain typing: `f(inputs, save)` returns the value and its gradient function. */
export function customOp(
  f: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => { value: tf.Tensor; gradFunc: GradFn },
): (...inputs: tf.Tensor[]) => tf.Tensor {
  const g = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    return f(args as tf.Tensor[], save);
  });
  return (...inputs: tf.Tensor[]) => g(...inputs) as tf.Tensor;
}

/**
 * A frozen weight's transpose W^T, for dx = dy W^T. `frozenTranspose` (when given) returns a cached copy: on
 * wasm, a product with a fresh transpose costs ~2x one with a persistent operand (the transpose, plus XNNPACK
 * packing the new operand each call; 47 vs 26 ms for [512, 1536] x [1536, 576]).
 */
export type TransposeOf = () => tf.Tensor2D | null;

/**
 * y = x W with W stored [in, out]. The gradient for x is dy W^T; for a trainable W also dW = x^T dy, while a
 * frozen W stays out of the op's inputs so no gradient is computed for it. `known`, when given, is x W already
 * computed from the same x and W (gradient checkpointing's replay): it is returned instead of multiplying again.
 */
function linearOp(x: tf.Tensor2D, w: tf.Tensor2D, wT?: TransposeOf, known?: tf.Tensor2D): tf.Tensor2D {
  const product = (xx: tf.Tensor2D, ww: tf.Tensor2D) => (known ? tf.clone(known) : tf.matMul(xx, ww));
  if (isTrainable(w)) {
    const op = customOp(([xx, ww], save) => {
      save([xx as tf.Tensor, ww as tf.Tensor]);
      return {
        value: product(xx as tf.Tensor2D, ww as tf.Tensor2D),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, ws] = saved as [tf.Tensor2D, tf.Tensor2D];
          const g = dy as tf.Tensor2D;
          return [tf.matMul(g, tf.transpose(ws)), tf.matMul(tf.transpose(xs), g)];
        },
      };
    });
    return op(x, w) as tf.Tensor2D;
  }
  const op = customOp(([xx], save) => {
    save([w]);
    return {
      value: product(xx as tf.Tensor2D, w),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const ws = saved[0] as tf.Tensor2D;
        return tf.matMul(dy as tf.Tensor2D, wT?.() ?? tf.transpose(ws));
      },
    };
  });
  return op(x) as tf.Tensor2D;
}

/**
 * x W whose value is already known (`value`, computed earlier from the same x and W), with the gradient of
 * `linear`. Gradient checkpointing replays a layer with it: the recomputation skips the layer's products and
 * only redoes the cheap elementwise work, at the memory of one saved output per linear module.
 */
export function linearWithValue(
  x: tf.Tensor2D,
  w: tf.Tensor2D,
  value: tf.Tensor2D,
  wT?: TransposeOf,
): tf.Tensor2D {
  return linearOp(x, w, wT, value);
}

function isTrainable(w: tf.Tensor): boolean {
  return w instanceof tf.Variable && w.trainable;
}

/**
 * A linear layer on [rows, in] activations with a weight stored [in, out]. `wT` may supply a cached W^T for
 * the gradient of a frozen W (see TransposeOf).
 */
export function linear(x: tf.Tensor2D, w: tf.Tensor2D, wT?: TransposeOf): tf.Tensor2D {
  return linearOp(x, w, wT);
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

/**
 * HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * weight, all in float32. Its gradient is written out so the tape
 * keeps only x and the [rows, 1] rsqrt (autograd would keep five [rows, hidden] intermediates per norm):
 * with g = dy * weight and xhat = x * r, dx = r * (g - xhat * mean(g * xhat)) and dweight = sum over rows of
 * dy * xhat.
 */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D {
  const forward = (xx: tf.Tensor2D) => {
    const r = tf.rsqrt(tf.add(tf.mean(tf.square(xx), -1, true), eps));
    return { r, y: tf.mul(weight, tf.mul(xx, r)) as tf.Tensor2D };
  };
  if (!isRecording()) return tf.tidy(() => forward(x).y);
  const op = customOp(([xx, w], save) => {
    const { r, y } = forward(xx as tf.Tensor2D);
    save([xx as tf.Tensor, r, w as tf.Tensor]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, rs, ws] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor1D];
        const xhat = tf.mul(xs, rs);
        const g = tf.mul(dy, ws);
        const dx = tf.mul(rs, tf.sub(g, tf.mul(xhat, tf.mean(tf.mul(g, xhat), -1, true))));
        return [dx, tf.sum(tf.mul(dy, xhat), 0)];
      },
    };
  });
  return op(x, weight) as tf.Tensor2D;
}

/**
 * The residual stream's a + b (equal shapes): its gradient is dy for both, and nothing is kept on the tape
 * (autograd's Add keeps both inputs, only for their shapes).
 */
export function residualAdd(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D {
  if (!isRecording()) return tf.add(a, b);
  const op = customOp(([aa, bb]) => ({
    value: tf.add(aa as tf.Tensor, bb as tf.Tensor),
    // Two views of dy, not the same tensor twice: the tape may dispose one gradient after summing it.
    gradFunc: (dy: tf.Tensor) => [tf.reshape(dy, a.shape), tf.reshape(dy, b.shape)],
  }));
  return op(a, b) as tf.Tensor2D;
}

/**
 * Rows `rows` of x [N, cols] (distinct, in any order), differentiable: the gradient scatters dy back to those
 * rows and is zero elsewhere (tf.gather's own gradient needs UnsortedSegmentSum, which wasm lacks).
 */
export function pickRows(x: tf.Tensor2D, rows: Int32Array): tf.Tensor2D {
  const [N, cols] = x.shape;
  if (!isRecording()) return tf.tidy(() => tf.gather(x, tf.tensor1d(rows, "int32")));
  const op = customOp(([xx]) => ({
    value: tf.gather(xx as tf.Tensor, tf.tensor1d(rows, "int32")),
    gradFunc: (dy: tf.Tensor) => tf.scatterND(tf.tensor2d(rows, [rows.length, 1], "int32"), dy, [N, cols]),
  }));
  return op(x) as tf.Tensor2D;
}

/**
 * SwiGLU's product silu(gate) * up, with silu(g) = g * sigmoid(g). The tape keeps gate and up only:
 * with s = sigmoid(g), d up = dy * g * s and d gate = dy * up * s * (1 + g * (1 - s)).
 */
export function swiglu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  if (!isRecording()) return tf.tidy(() => tf.mul(silu(gate), up) as tf.Tensor2D);
  const op = customOp(([g, u], save) => {
    save([g as tf.Tensor, u as tf.Tensor]);
    return {
      value: tf.mul(silu(g as tf.Tensor), u as tf.Tensor),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [gs, us] = saved as [tf.Tensor2D, tf.Tensor2D];
        const sig = tf.sigmoid(gs);
        const dGate = tf.mul(tf.mul(dy, us), tf.mul(sig, tf.add(1, tf.mul(gs, tf.sub(1, sig)))));
        return [dGate, tf.mul(dy, tf.mul(gs, sig))];
      },
    };
  });
  return op(gate, up) as tf.Tensor2D;
}

/**
 * A LoRA update added to a base projection: y + scaling * (xd A) B, with xd the (dropped-out) input, A [in, r]
 * and B [r, out]. One op whose tape keeps xd and the [rows, r] product xd A, instead of three [rows, out]
 * intermediates (the delta, its scaled copy, y). The scaling multiplies the [r, out] matrices, not the
 * [rows, out] products: (xd A)(s B) instead of s ((xd A) B), which saves a pass over every projection's output
 * (and is the same number bit for bit when s is a power of two, as the presets' alpha / r = 1 and 2 are).
 * With sB = scaling * B and t = dy sB^T: d xd = t A^T, dA = xd^T t, dB = scaling * (xd A)^T dy; y gets dy.
 */
export function loraAdd(
  y: tf.Tensor2D,
  xd: tf.Tensor2D,
  a: tf.Tensor2D,
  b: tf.Tensor2D,
  scaling: number,
): tf.Tensor2D {
  const scaled = (m: tf.Tensor2D): tf.Tensor2D => (scaling === 1 ? m : tf.mul(m, scaling));
  if (!isRecording()) {
    return tf.tidy(() => tf.add(y, tf.matMul(tf.matMul(xd, a), scaled(b))) as tf.Tensor2D);
  }
  const op = customOp(([yy, xx, aa, bb], save) => {
    const xa = tf.matMul(xx as tf.Tensor2D, aa as tf.Tensor2D);
    save([xx as tf.Tensor, xa, aa as tf.Tensor, bb as tf.Tensor]);
    return {
      value: tf.add(yy as tf.Tensor, tf.matMul(xa, scaled(bb as tf.Tensor2D))),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, xas, as, bs] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const t = tf.matMul(dy as tf.Tensor2D, tf.transpose(scaled(bs)));
        return [
          tf.reshape(dy, y.shape),
          tf.matMul(t, tf.transpose(as)),
          // dA = xd^T t, computed as (t^T xd)^T: transposes of [rows, r] and [r, in], not of the [rows, in] input
          tf.transpose(tf.matMul(tf.transpose(t), xs)),
          scaled(tf.matMul(tf.transpose(xas), dy as tf.Tensor2D)),
        ];
      },
    };
  });
  return op(y, xd, a, b) as tf.Tensor2D;
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
 * `rot` is rotateHalfMatrix(d) as a frozen tensor. The gradient, dy cos + (dy sin) R^T, keeps nothing of x on
 * the tape (autograd would keep x, its rotation and both products).
 */
export function applyRope(x: tf.Tensor3D, cos: tf.Tensor3D, sin: tf.Tensor3D, rot: tf.Tensor2D): tf.Tensor3D {
  const [rows, heads, d] = x.shape;
  const rotate = (t: tf.Tensor, r: tf.Tensor2D) =>
    tf.reshape(tf.matMul(tf.reshape(t, [rows * heads, d]), r), [rows, heads, d]);
  if (!isRecording())
    return tf.tidy(() => tf.add(tf.mul(x, cos), tf.mul(rotate(x, rot), sin)) as tf.Tensor3D);
  const op = customOp(([xx], save) => {
    // cos/sin belong to the forward's scope: the tape keeps its own references for the backward pass.
    save([cos, sin, rot]);
    return {
      value: tf.add(tf.mul(xx as tf.Tensor, cos), tf.mul(rotate(xx as tf.Tensor, rot), sin)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [c, s, r] = saved as [tf.Tensor3D, tf.Tensor3D, tf.Tensor2D];
        return tf.add(tf.mul(dy, c), rotate(tf.mul(dy, s), tf.transpose(r)));
      },
    };
  });
  return op(x) as tf.Tensor3D;
}

/**
 * Row i of a [n, cols] tensor, reshaped: a slice of one contiguous run. On wasm this relies on the Slice kernel
 * that @hippocrates/backend installs (it copies only the row: 0.025 ms for one row of a [3, 97536] operand,
 * where tfjs's stock wasm Slice copies the whole input first, 2.6 ms, and a one-hot [1, n] product takes
 * 0.8 ms). A copy: the row's bits unchanged.
 */
export function pickRow(t: tf.Tensor2D, i: number, shape: [number, number]): tf.Tensor2D {
  if (t.shape[0] === 1) return tf.reshape(t, shape);
  return tf.reshape(tf.slice(t, [i, 0], [1, t.shape[1]]), shape);
}

/**
 * log(sum(exp(x))) of each row of [rows, cols] logits, with the softmax: lse = max(x) - log(max(softmax(x))).
 * The identity is exact (the largest probability is 1 / sum(exp(x - max))), and max(softmax) >= 1 / cols, so
 * the log never meets an underflow. It runs on wasm's vectorized Softmax kernel instead of Exp, which is ~3.5x
 * slower there (512 x 49152 logits: softmax 0.14 s, exp 0.48 s, logSumExp 0.44 s).
 */
export function softmaxAndLogSumExp(x: tf.Tensor2D): { p: tf.Tensor2D; lse: tf.Tensor1D } {
  const p = tf.softmax(x) as tf.Tensor2D;
  const lse = tf.sub(tf.max(x, -1), tf.log(tf.max(p, -1))) as tf.Tensor1D;
  return { p, lse };
}

/** log-softmax of each row of [rows, cols] logits (see softmaxAndLogSumExp for why not tf.logSoftmax). */
export function logSoftmaxRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.sub(x, tf.reshape(softmaxAndLogSumExp(x).lse, [-1, 1])) as tf.Tensor2D);
}

/** Shapes of one attention call (see `attention`). */
interface AttentionDims {
  batch: number;
  kvHeads: number;
  groups: number;
  T: number;
  S: number;
  d: number;
}

/** Up to this many query rows per KV head (decoding), one batched product beats a loop of 2-D ones. */
const SMALL_QUERY_ROWS = 16;

/**
 * Whether an attention call with `groups * T` query rows per KV head takes the batched (decoding) path. Its
 * sums run in another order than the per-head 2-D products, so code that needs bit-identical results across
 * two ways of splitting a sequence (prefix reuse) keeps its steps on one side of this line.
 */
export function usesBatchedAttention(groups: number, T: number): boolean {
  return groups * T <= SMALL_QUERY_ROWS && !isRecording();
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
  dims: AttentionDims,
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
 * Each (batch row, KV head) block is picked out with `pickRow`.
 */
export function attention(
  q: tf.Tensor2D,
  kT: tf.Tensor2D,
  v: tf.Tensor2D,
  masks: tf.Tensor2D[],
  dims: AttentionDims,
): tf.Tensor2D {
  const { batch, kvHeads, groups, T, S, d } = dims;
  if (usesBatchedAttention(groups, T)) return attentionBatched(q, kT, v, masks, dims);
  const f = customOp(([qq, kk, vv], save) => {
    const outs: tf.Tensor[] = [];
    const probs: tf.Tensor2D[] = [];
    for (let b = 0; b < batch; b++) {
      const mask = (masks.length === 1 ? masks[0] : masks[b]) as tf.Tensor2D;
      for (let h = 0; h < kvHeads; h++) {
        const i = b * kvHeads + h;
        // A scope per block: only its probabilities and output outlive it (the heap's peak is per block).
        const [p, out] = tf.tidy(() => {
          const scores = tf.matMul(
            pickRow(qq as tf.Tensor2D, i, [groups * T, d]),
            pickRow(kk as tf.Tensor2D, i, [d, S]),
          );
          const pb: tf.Tensor2D = tf.reshape(tf.softmax(tf.add(tf.reshape(scores, [groups, T, S]), mask)), [
            groups * T,
            S,
          ]);
          return [pb, tf.reshape(tf.matMul(pb, pickRow(vv as tf.Tensor2D, i, [S, d])), [1, groups * T * d])];
        }) as [tf.Tensor2D, tf.Tensor];
        probs.push(p);
        outs.push(out);
      }
    }
    save([qq as tf.Tensor, kk as tf.Tensor, vv as tf.Tensor, ...probs]);
    return {
      value: tf.concat(outs, 0),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [qs, ks, vs] = saved as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
        const dq: tf.Tensor[] = [];
        const dk: tf.Tensor[] = [];
        const dv: tf.Tensor[] = [];
        for (let i = 0; i < batch * kvHeads; i++) {
          const p = saved[3 + i] as tf.Tensor2D;
          const [dvb, dqb, dkb] = tf.tidy(() => {
            const g = headGrads(
              pickRow(dy as tf.Tensor2D, i, [groups * T, d]),
              p,
              pickRow(qs, i, [groups * T, d]),
              pickRow(ks, i, [d, S]),
              pickRow(vs, i, [S, d]),
            );
            return [
              tf.reshape(g.dv, [1, S * d]),
              tf.reshape(g.dq, [1, groups * T * d]),
              tf.reshape(g.dkT, [1, d * S]),
            ];
          }) as tf.Tensor[];
          dv.push(dvb as tf.Tensor);
          dq.push(dqb as tf.Tensor);
          dk.push(dkb as tf.Tensor);
        }
        return [tf.concat(dq, 0), tf.concat(dk, 0), tf.concat(dv, 0)];
      },
    };
  });
  return f(q, kT, v) as tf.Tensor2D;
}

/**
 * Gradients of one attention head's block, out = softmax(q kT + mask) v, from dOut and the probabilities p:
 * dv = p^T dOut computed as (dOut^T p)^T (the transposes are of [., d] blocks, not of p); softmax backward
 * dS = p * (dP - rowsum(dP * p)) with dP = dOut v^T; dq = dS k, dkT = q^T dS.
 */
function headGrads(
  dOut: tf.Tensor2D,
  p: tf.Tensor2D,
  q: tf.Tensor2D,
  kT: tf.Tensor2D,
  v: tf.Tensor2D,
): { dq: tf.Tensor2D; dkT: tf.Tensor2D; dv: tf.Tensor2D } {
  const dP = tf.matMul(dOut, tf.transpose(v));
  const dS = tf.mul<tf.Tensor2D>(p, tf.sub(dP, tf.sum(tf.mul(dP, p), -1, true)));
  return {
    dq: tf.matMul(dS, tf.transpose(kT)),
    dkT: tf.matMul(tf.transpose(q), dS),
    dv: tf.transpose(tf.matMul<tf.Tensor2D>(tf.transpose(dOut), p)),
  };
}

/**
 * The same attention for packed rows split into blocks and causal tiles (`AttentionBlock`, from the step's
 * masks): each block's queries attend to the block's own keys only, so a row costs sum(l_i^2) instead of T^2
 * (flash-attention's varlen kernels; TRL `padding_free`), and a long block's queries run in tiles that read the
 * keys up to their own (about (n + 1) / 2n of l^2 for n tiles). Exact: the keys left out are masked for every
 * query of the tile, and a tile's keys end at a multiple of 4, which keeps the softmax's bits (engine.ts item 5).
 *
 * Layouts as `attention` with no cache (S = T), except that the queries of a KV head are ordered (t, g), token
 * major, so that a tile's queries are one contiguous run of rows:
 * - q:  [B * Hkv, T * groups * d], kT: [B * Hkv, d * T], v: [B * Hkv, T * d]
 * - masks: the tiles' additive [queries, keys] masks; blocks[b] lists row b's tiles and their mask's index
 * Returns the context [B * Hkv, T * groups * d] (= [B, Hkv, T, groups, d]).
 */
export function attentionInBlocks(
  q: tf.Tensor2D,
  kT: tf.Tensor2D,
  v: tf.Tensor2D,
  masks: tf.Tensor2D[],
  blocks: readonly (readonly AttentionBlock[])[],
  dims: AttentionDims,
): tf.Tensor2D {
  const { batch, kvHeads, groups: G, T, d } = dims;
  const cat = (xs: tf.Tensor[], axis: number) =>
    xs.length === 1 ? (xs[0] as tf.Tensor) : tf.concat(xs, axis);
  const f = customOp(([qq, kk, vv], save) => {
    const outs: tf.Tensor[] = [];
    // Per (row, KV head, tile): its probabilities and its q, kT and v blocks, which the backward reads (the
    // tape keeps them without copying: @hippocrates/backend's wasm Identity shares storage).
    const kept: tf.Tensor[] = [];
    for (let b = 0; b < batch; b++) {
      for (let h = 0; h < kvHeads; h++) {
        const i = b * kvHeads + h;
        // A scope per (row, KV head): only the output and what the backward reads outlive it.
        const [out, ...rest] = tf.tidy(() => {
          const qh = pickRow(qq as tf.Tensor2D, i, [T * G, d]);
          const kh = pickRow(kk as tf.Tensor2D, i, [d, T]);
          const vh = pickRow(vv as tf.Tensor2D, i, [T, d]);
          const parts = (blocks[b] ?? []).map(({ start, end, keyStart, keyEnd, mask }) => {
            const [l, kl] = [end - start, keyEnd - keyStart];
            const qBlock = tf.slice(qh, [start * G, 0], [l * G, d]);
            const kBlock = tf.slice(kh, [0, keyStart], [d, kl]);
            const vBlock = tf.slice(vh, [keyStart, 0], [kl, d]);
            const m = tf.reshape(masks[mask] as tf.Tensor2D, [l, 1, kl]);
            const scores = tf.reshape(tf.matMul(qBlock, kBlock), [l, G, kl]);
            const p: tf.Tensor2D = tf.reshape(tf.softmax(tf.add(scores, m)), [l * G, kl]);
            return { out: tf.matMul(p, vBlock), saved: [p, qBlock, kBlock, vBlock] };
          });
          return [
            tf.reshape(
              cat(
                parts.map((x) => x.out),
                0,
              ),
              [1, T * G * d],
            ),
            ...parts.flatMap((x) => x.saved),
          ];
        }) as tf.Tensor[];
        outs.push(out as tf.Tensor);
        kept.push(...rest);
      }
    }
    save(kept);
    return {
      value: tf.concat(outs, 0),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const dq: tf.Tensor[] = [];
        const dk: tf.Tensor[] = [];
        const dv: tf.Tensor[] = [];
        let next = 0;
        for (let b = 0; b < batch; b++) {
          const rowTiles = blocks[b] ?? [];
          for (let h = 0; h < kvHeads; h++) {
            const first = next;
            next += 4 * rowTiles.length;
            const [dqh, dkh, dvh] = tf.tidy(() => {
              const dOuth = pickRow(dy as tf.Tensor2D, b * kvHeads + h, [T * G, d]);
              const parts = rowTiles.map(({ start, end }, i) => {
                const l = end - start;
                const [p, qBlock, kBlock, vBlock] = saved.slice(first + 4 * i, first + 4 * i + 4) as [
                  tf.Tensor2D,
                  tf.Tensor2D,
                  tf.Tensor2D,
                  tf.Tensor2D,
                ];
                return headGrads(tf.slice(dOuth, [start * G, 0], [l * G, d]), p, qBlock, kBlock, vBlock);
              });
              // Key gradients: the tiles of a block read overlapping keys (from the block's start), so their
              // dK and dV add up over the block; blocks then lie end to end.
              const dkBlocks: tf.Tensor[] = [];
              const dvBlocks: tf.Tensor[] = [];
              for (const [from, to] of blockRuns(rowTiles)) {
                const width =
                  (rowTiles[to - 1] as AttentionBlock).end - (rowTiles[from] as AttentionBlock).keyStart;
                const dks: tf.Tensor[] = [];
                const dvs: tf.Tensor[] = [];
                for (let i = from; i < to; i++) {
                  const tile = rowTiles[i] as AttentionBlock;
                  const g = parts[i] as { dkT: tf.Tensor2D; dv: tf.Tensor2D };
                  const short = width - (tile.keyEnd - tile.keyStart);
                  dks.push(
                    short === 0
                      ? g.dkT
                      : tf.pad(g.dkT, [
                          [0, 0],
                          [0, short],
                        ]),
                  );
                  dvs.push(
                    short === 0
                      ? g.dv
                      : tf.pad(g.dv, [
                          [0, short],
                          [0, 0],
                        ]),
                  );
                }
                dkBlocks.push(dks.length === 1 ? (dks[0] as tf.Tensor) : tf.addN(dks));
                dvBlocks.push(dvs.length === 1 ? (dvs[0] as tf.Tensor) : tf.addN(dvs));
              }
              return [
                tf.reshape(
                  cat(
                    parts.map((x) => x.dq),
                    0,
                  ),
                  [1, T * G * d],
                ),
                tf.reshape(cat(dkBlocks, 1), [1, d * T]),
                tf.reshape(cat(dvBlocks, 0), [1, T * d]),
              ];
            }) as tf.Tensor[];
            dq.push(dqh as tf.Tensor);
            dk.push(dkh as tf.Tensor);
            dv.push(dvh as tf.Tensor);
          }
        }
        return [tf.concat(dq, 0), tf.concat(dk, 0), tf.concat(dv, 0)];
      },
    };
  });
  return f(q, kT, v) as tf.Tensor2D;
}

/** The tiles' [from, to) index runs that share a block (the same keyStart), in order. */
function blockRuns(tiles: readonly AttentionBlock[]): [number, number][] {
  const runs: [number, number][] = [];
  tiles.forEach((t, i) => {
    const last = runs[runs.length - 1];
    if (last !== undefined && (tiles[last[0]] as AttentionBlock).keyStart === t.keyStart) last[1] = i + 1;
    else runs.push([i, i + 1]);
  });
  return runs;
}

/** Rows per chunk so that one chunk's logits stay near 32 MB. */
function chunkRows(vocab: number): number {
  return Math.max(1, Math.floor((8 * 1024 * 1024) / vocab));
}

/** The rows of h a chunk reads (scored rows, anywhere in h: a gather). */
function chunkOf(h: tf.Tensor2D, rows: Int32Array): tf.Tensor2D {
  return tf.gather(h, tf.tensor1d(rows, "int32"));
}

/**
 * log p(target | h_row) through the lm_head for the scored rows of h [N, E] only: a row reaches the head, its
 * softmax and its gradient only if it is scored (SFT and DPO score the response tokens, a few of each
 * example's hundreds). Logits = h headEV ([E, V]) are computed in row chunks, so [rows, V] logits never exist
 * at once (at vocab 49152 they dominate a training step's memory).
 *
 * - Without `rows`: `targets` has one entry per row of h; rows whose target is negative (IGNORE_INDEX) are not
 *   scored and give 0. Returns [N].
 * - With `rows`: row `rows[i]` of h predicts `targets[i]`; rows may repeat (one position predicting the first
 *   token of two responses that share a prompt). Returns [rows.length].
 *
 * The gradient with respect to h is zero on unscored rows (and summed over repeats).
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
  rows?: ArrayLike<number>,
): tf.Tensor1D {
  const [N, E] = h.shape;
  const V = headEV.shape[1];
  const { picks, ids } = scoredRows(N, V, targets, rows);
  const n = picks.length;
  const outLength = rows === undefined ? N : n;
  // Every row scored in order (CPT blocks): no gather or scatter around the head.
  const identity = rows === undefined && n === N;
  const C = chunkRows(V);
  const chunkStarts: number[] = [];
  for (let s = 0; s < n; s += C) chunkStarts.push(s);
  // Decided here: inside the op's forward, tfjs is not recording.
  const fuseGradient = weight === null && isRecording();
  const picksT = () => tf.tensor2d(picks, [n, 1], "int32");
  // [n] values (or [n, E] rows) -> [outLength] ([N, E]): zeros where unscored, repeats summed.
  const spread = (t: tf.Tensor, shape: number[]): tf.Tensor =>
    identity || rows !== undefined ? t : tf.scatterND(picksT(), t, shape);
  const spreadRows = (t: tf.Tensor): tf.Tensor => (identity ? t : tf.scatterND(picksT(), t, [N, E]));
  // dy [outLength] -> [n] for the scored entries.
  const pickDy = (dy: tf.Tensor): tf.Tensor =>
    identity || rows !== undefined ? dy : tf.gather(dy, tf.tensor1d(picks, "int32"));

  const run = (inputs: tf.Tensor[], save: tf.GradSaveFunc) => {
    const hh = inputs[0] as tf.Tensor2D;
    const W = (weight !== null && !tied ? inputs[1] : headEV) as tf.Tensor2D;
    if (n === 0) {
      return {
        value: tf.zeros([outLength]),
        gradFunc: () => (weight !== null ? [tf.zerosLike(hh), tf.zerosLike(weight)] : tf.zerosLike(hh)),
      };
    }
    // One scope per chunk: only its [C] log-probs (and, fused, its [C, E] gradient rows) outlive it. A frozen
    // head under a gradient tape gets d logp_i / d h_i = head[y_i] - softmax_i head^T while the chunk's logits
    // exist (as Liger's fused linear cross-entropy does): the backward pass then only scales these rows by dy,
    // instead of recomputing every chunk's logits and softmax.
    const back = fuseGradient ? headVE() : null;
    const logps: tf.Tensor[] = [];
    const dhs: tf.Tensor[] = [];
    for (const s of chunkStarts) {
      const m = Math.min(C, n - s);
      const out = tf.tidy(() => {
        const logits = tf.matMul(chunkOf(hh, picks.subarray(s, s + m)), W);
        const { p, lse } = softmaxAndLogSumExp(logits as tf.Tensor2D);
        const flat = new Int32Array(m);
        for (let k = 0; k < m; k++) flat[k] = k * V + (ids[s + k] as number);
        const logp = tf.sub(tf.gather(tf.reshape(logits, [-1]), tf.tensor1d(flat, "int32")), lse);
        if (back === null) return [logp];
        const chunkIds = tf.tensor1d(ids.subarray(s, s + m), "int32");
        return [logp, tf.sub(tf.gather(back, chunkIds), tf.matMul(p, back))];
      });
      logps.push(out[0] as tf.Tensor);
      if (out[1]) dhs.push(out[1]);
    }
    const value = spread(tf.concat(logps, 0), [outLength]);
    if (fuseGradient) {
      save([tf.concat(dhs, 0)]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
          spreadRows(tf.mul(saved[0] as tf.Tensor2D, tf.reshape(pickDy(dy), [-1, 1]))),
      };
    }
    save([hh, W]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const hs = saved[0] as tf.Tensor2D;
        const Ws = saved[1] as tf.Tensor2D;
        const dyPicked = pickDy(dy);
        const backT = tied ? headVE() : tf.transpose(Ws);
        // (a holder, not a `let`: TypeScript does not follow assignments made across the tidy callbacks)
        const sum: { dW: tf.Tensor2D | null } = { dW: null };
        const dh: tf.Tensor[] = [];
        for (const s of chunkStarts) {
          const m = Math.min(C, n - s);
          const prev = sum.dW;
          const [dhc, dWc] = tf.tidy(() => {
            const hc = chunkOf(hs, picks.subarray(s, s + m));
            const p = tf.softmax(tf.matMul(hc, Ws));
            // d logp / d logits = onehot(target) - softmax
            const g = tf.mul(
              tf.sub(tf.oneHot(tf.tensor1d(ids.subarray(s, s + m), "int32"), V), p),
              tf.reshape(tf.slice(dyPicked, [s], [m]), [-1, 1]),
            ) as tf.Tensor2D;
            const dhPart = tf.matMul(g, backT);
            if (weight === null) return [dhPart];
            const part: tf.Tensor2D = tied ? tf.matMul(tf.transpose(g), hc) : tf.matMul(tf.transpose(hc), g);
            return [dhPart, prev === null ? part : (tf.add(prev, part) as tf.Tensor2D)];
          }) as tf.Tensor2D[];
          if (prev !== null) prev.dispose();
          dh.push(dhc as tf.Tensor2D);
          sum.dW = dWc ?? null;
        }
        const dhAll = spreadRows(tf.concat(dh, 0));
        if (weight === null) return [dhAll];
        return [dhAll, sum.dW ?? tf.zerosLike(weight)];
      },
    };
  };
  const op = customOp(run);
  return (weight !== null ? op(h, weight) : op(h)) as tf.Tensor1D;
}

/** The scored rows of a tokenLogProbs call and their targets, checked. */
function scoredRows(
  N: number,
  V: number,
  targets: ArrayLike<number>,
  rows: ArrayLike<number> | undefined,
): { picks: Int32Array; ids: Int32Array } {
  if (rows !== undefined) {
    if (rows.length !== targets.length) {
      throw new RangeError(`tokenLogProbs: ${rows.length} rows for ${targets.length} targets`);
    }
    const picks = Int32Array.from(rows);
    const ids = Int32Array.from(targets);
    for (let k = 0; k < picks.length; k++) {
      const r = picks[k] as number;
      const t = ids[k] as number;
      if (r < 0 || r >= N || r !== rows[k])
        throw new RangeError(`tokenLogProbs: row ${rows[k]} outside 0..${N - 1}`);
      if (t < 0 || t >= V || t !== targets[k])
        throw new RangeError(`tokenLogProbs: target ${targets[k]} outside the vocabulary of ${V}`);
    }
    return { picks, ids };
  }
  if (targets.length !== N) throw new RangeError(`tokenLogProbs: ${targets.length} targets for ${N} rows`);
  const picks: number[] = [];
  const ids: number[] = [];
  for (let i = 0; i < N; i++) {
    const t = targets[i] as number;
    if (!(t >= 0)) continue;
    if (!Number.isInteger(t) || t >= V)
      throw new RangeError(`tokenLogProbs: target ${t} outside the vocabulary of ${V}`);
    picks.push(i);
    ids.push(t);
  }
  return { picks: Int32Array.from(picks), ids: Int32Array.from(ids) };
}
