/**
 * LlamaForCausalLM / MistralForCausalLM in TensorFlow.js, read top to bottom as transformers'
 * modeling_llama.py is: the linear layers (with PEFT's LoRA), LlamaAttention, LlamaMLP, LlamaDecoderLayer,
 * then the model (embed_tokens, layers, norm) and the lm_head. Names in the code are the checkpoint's keys
 * (`model.layers.N.self_attn.q_proj`, `mlp.gate_proj`, `input_layernorm`, ...).
 *
 *   h = embed_tokens(ids)
 *   for each layer:  h = h + o_proj(attn(rope(q_proj(norm(h))), rope(k_proj(norm(h))), v_proj(norm(h))))
 *                    h = h + down_proj(silu(gate_proj(norm(h))) * up_proj(norm(h)))
 *   logits = lm_head(norm(h))
 *
 * Mistral is the same network with a sliding-window mask (a query at cache index i sees keys j with
 * i - window < j <= i, as transformers' `sliding_window_overlay`), so both live here.
 *
 * Around the math: step.ts computes masks and positions, ops.ts the fused tensor ops (each on the wasm
 * backend's fast 2-D layouts, with a hand-written gradient), transposes.ts caches W^T of frozen weights,
 * engine.ts holds the few tfjs internals this relies on. Activations are kept 2-D, [batch * seq, features].
 */
import { createRng, HippoError, type ModelConfig, type Rng } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { createCache, type KVCache } from "./cache.js";
import { type Dims, dimsOf, ropeInvFreq } from "./config.js";
import { withOuterTape } from "./engine.js";
import type { LoraAdapter } from "./lora.js";
import {
  applyRope,
  attention,
  attentionInBlocks,
  embedding,
  linear,
  linearWithValue,
  loraAdd,
  pickRows,
  residualAdd,
  rmsNorm,
  rotateHalfMatrix,
  swiglu,
  tiedHead,
  tokenLogProbs,
} from "./ops.js";
import { planStep, type Step, stepTensors } from "./step.js";
import { createTransposeCache, type TransposeCache } from "./transposes.js";
import { weightSpecs } from "./weights.js";

export interface ForwardOptions {
  /** [B, T]: 1 for real tokens, 0 for padding (left or right). Covers the new tokens only; a cache remembers the past. */
  attentionMask?: number[][];
  /** [B, T] explicit position ids. Default: count of earlier real tokens of the same segment (HF generate's rule). */
  positionIds?: number[][];
  /** [B, T] document index of each token in packed sequences: attention stays within a segment, positions restart. */
  segmentIds?: number[][];
  /**
   * [B, T] with `segmentIds`: the segment each token's segment branches off (its own segment: none). A token
   * also attends to the earlier tokens of that parent: one copy of a prompt shared by the responses that follow
   * it (DPO's chosen and rejected), a context shared by its continuations. Positions continue the parent's
   * unless `positionIds` says otherwise.
   */
  parentSegmentIds?: number[][];
  /** Append this step's keys/values to the cache and attend to everything cached. */
  cache?: KVCache;
  /**
   * With a cache: every new token may attend to every cached (valid) slot whatever its segment, while new
   * tokens still attend only within their own segment. This packs several continuations of one shared
   * context into one row (each continuation its own segment, explicit `positionIds`). Slots, not positions,
   * are what a sliding window counts, so the caller keeps cache + new tokens within the window.
   */
  prefixVisible?: boolean;
  /** Which logits to compute: all positions (default), only the last position of each row, or none. */
  logits?: "all" | "last" | "none";
  /** Also return the final normalized hidden states [B, T, hidden]. */
  outputHidden?: boolean;
  /**
   * Only these slots' outputs are wanted (distinct, flattened b * T + t: the positions a loss or a score reads).
   * The last decoder layer still computes every slot's queries, keys and values (attention needs them), then
   * o_proj, the MLP and the final norm only for these rows; `hidden` and `logits: "all"` come back as
   * [1, rows, .] in this order, the same bits as those rows of the full forward. The last layer is ~3% of a
   * 30-layer forward, nearly all of it skipped when a few of many positions are scored.
   */
  hiddenRows?: ArrayLike<number>;
  /** Training mode: LoRA dropout is applied. */
  training?: boolean;
  /** RNG for dropout masks (default: the model's own, seeded at creation). */
  rng?: Rng;
  /**
   * Gradient checkpointing: each decoder layer keeps only its input on the tape and is recomputed during
   * the backward pass with its saved linear products (less memory; elementwise work and attention are redone,
   * not the products). Training only; ignored with a cache.
   */
  checkpointLayers?: boolean;
  /**
   * Debugging/reference hook: called with named intermediate tensors (`embeddings`, `layers.N`, `final_norm`,
   * `layers.N.q_rot` [B,T,H,d], `layers.N.k_all`/`v_all` [B,Hkv,S,d], `layers.N.ctx` [B,T,H,d],
   * `layers.N.attn_out` [B,T,E]; with `hiddenRows` the last layer's `attn_out`, `layers.N` and `final_norm` are
   * [1, rows, E]). Read or clone them inside the callback: they are disposed afterwards.
   */
  trace?: (name: string, t: tf.Tensor) => void;
}

export interface ForwardOutput {
  /** [B, T, vocab] ("all"; [1, rows, vocab] with hiddenRows), [B, 1, vocab] ("last") or null ("none"). */
  logits: tf.Tensor3D | null;
  /** [B, T, hidden] after the final norm, when outputHidden ([1, rows, hidden] with hiddenRows). */
  hidden: tf.Tensor3D | null;
}

export interface CausalLM {
  readonly config: ModelConfig;
  readonly dims: Dims;
  /** All base weights by HF name; linear weights are [in, out]. Base weights are frozen unless full fine-tuning. */
  readonly weights: Map<string, tf.Variable>;
  /** LoRA adapters by name (see lora.ts). */
  readonly adapters: Map<string, LoraAdapter>;
  /** Adapters applied in the forward pass, in order. */
  activeAdapters: string[];
  /** Master switch: false runs the base model alone (e.g. DPO's reference). */
  adaptersEnabled: boolean;
  /**
   * Memory for cached transposes W^T of frozen linear weights, which the gradients of LoRA training use
   * (default 1 GiB; about 2x faster backward products on wasm). 0 turns the cache off: each backward product
   * transposes its weight again, and peak memory stays at the weights' own size.
   */
  transposeCacheBytes: number;
  forward(inputIds: number[][], options?: ForwardOptions): ForwardOutput;
  /**
   * One layer's self-attention on [B, T, hidden] inputs (already normalized), with the forward's options for
   * positions, masks and cache: for tests against reference internals and for tools.
   */
  attentionLayer(layer: number, x: tf.Tensor3D, options?: ForwardOptions): tf.Tensor3D;
  /** lm_head on [rows, hidden] normalized hidden states -> [rows, vocab]. */
  lmHead(hidden: tf.Tensor2D): tf.Tensor2D;
  /**
   * Per-token log-probabilities log p(targets[i] | hidden[i]) for [rows, hidden] normalized hidden states
   * (forward with `outputHidden: true`), computed through the lm_head in row chunks so the [rows, vocab] logits
   * never exist at once; differentiable (fast-path gradients). Only scored rows reach the head: negative
   * targets (IGNORE_INDEX) give 0 and cost nothing. With `rows`, row `rows[i]` predicts `targets[i]` (rows may
   * repeat) and the result has one entry per target. The memory-lean way to a training loss:
   * loss = -sum(logp) / count.
   */
  tokenLogProbs(hidden: tf.Tensor2D, targets: ArrayLike<number>, rows?: ArrayLike<number>): tf.Tensor1D;
  /** The variables a trainer should update: active adapters' A/B, plus base weights in full fine-tuning. */
  trainableVariables(): tf.Variable[];
  /**
   * The same variables under stable names (tfjs's own variable names differ between processes): HF names for
   * base weights, `<adapter>/<PEFT key>` for LoRA weights, e.g.
   * `default/base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. For optimizer state and checkpoints.
   */
  namedTrainableVariables(): Map<string, tf.Variable>;
  /** Make the base weights trainable (full fine-tuning) or frozen again. */
  setFullFineTuning(on: boolean): void;
  createCache(batch: number): KVCache;
  dispose(): void;
}

/** What the layer functions read: the model's weights and switches, and per-model constants. */
interface Net {
  dims: Dims;
  model: CausalLM;
  transposes: TransposeCache;
  /** rotate_half as a [d, d] matrix (see ops.rotateHalfMatrix). */
  rot: tf.Tensor2D;
  /** 1 / sqrt(head_dim), folded into the queries. */
  scale: number;
}

function matrix(net: Net, name: string): tf.Tensor2D {
  const w = net.model.weights.get(name);
  if (w === undefined) throw new HippoError("INTERNAL", "weight not found", { key: name });
  return w as tf.Variable<tf.Rank.R2>;
}

function vector(net: Net, name: string): tf.Tensor1D {
  const w = net.model.weights.get(name);
  if (w === undefined) throw new HippoError("INTERNAL", "weight not found", { key: name });
  return w as tf.Variable<tf.Rank.R1>;
}

// ---------------------------------------------------------------------------------------------------------
// Linear layers: nn.Linear without bias, plus the active LoRA adapters as PEFT's lora.Linear adds them.

/**
 * The linear module at `path` (e.g. `model.layers.0.self_attn.q_proj`):
 * y = x W + dropout(x) A B * scaling for each active adapter, W stored [in, out].
 */
function linearModule(net: Net, x: tf.Tensor2D, path: string, step: Step): tf.Tensor2D {
  const name = `${path}.weight`;
  const transpose = () => net.transposes.get(name);
  const products = step.products;
  let y: tf.Tensor2D;
  if (products?.mode === "replay") {
    const value = products.outputs[products.next++];
    if (value === undefined) throw new HippoError("INTERNAL", "checkpoint replay ran out of products");
    y = linearWithValue(x, matrix(net, name), value, transpose);
  } else {
    y = linear(x, matrix(net, name), transpose);
    products?.outputs.push(y);
  }
  const { model } = net;
  if (!model.adaptersEnabled) return y;
  for (const adapterName of model.activeAdapters) {
    const adapter = model.adapters.get(adapterName);
    const A = adapter?.a.get(name);
    const B = adapter?.b.get(name);
    if (adapter === undefined || A === undefined || B === undefined) continue;
    const p = adapter.config.dropout;
    const xin = step.training && p > 0 ? dropout(x, p, step.rng) : x;
    y = loraAdd(y, xin, A as tf.Variable<tf.Rank.R2>, B as tf.Variable<tf.Rank.R2>, adapter.scaling);
  }
  return y;
}

/** Inverted dropout as torch.nn.Dropout: keep with probability 1 - p, scale by 1 / (1 - p). */
function dropout(x: tf.Tensor2D, p: number, rng: Rng): tf.Tensor2D {
  const keep = new Float32Array(x.size);
  for (let i = 0; i < keep.length; i++) keep[i] = rng.next() < p ? 0 : 1 / (1 - p);
  return tf.mul(x, tf.tensor2d(keep, x.shape));
}

// ---------------------------------------------------------------------------------------------------------
// LlamaAttention: q/k/v projections, RoPE, scaled dot-product attention with GQA, o_proj.

function selfAttn(
  net: Net,
  x: tf.Tensor2D,
  layer: number,
  step: Step,
  cache: KVCache | undefined,
  keep?: Int32Array,
): tf.Tensor2D {
  const p = `model.layers.${layer}.self_attn`;
  const { batch: B, T } = step;
  const { heads: H, kvHeads: Hkv, headDim: d, groups: G, hidden: E } = net.dims;
  const N = B * T;
  const q = linearModule(net, x, `${p}.q_proj`, step);
  const k = linearModule(net, x, `${p}.k_proj`, step);
  const v = linearModule(net, x, `${p}.v_proj`, step);
  const qRot = applyRope(tf.reshape(q, [N, H, d]), step.cos, step.sin, net.rot);
  const kRot = applyRope(tf.reshape(k, [N, Hkv, d]), step.cos, step.sin, net.rot);
  // [B, T, H, d] -> [B, H, T, d]; the G query heads of a KV head are adjacent (HF repeat_kv order). Packed
  // rows in attention blocks order a KV head's queries token-major instead, [B, Hkv, T, G, d], so that a
  // block's queries are contiguous rows (attentionInBlocks).
  const blocks = step.blocks;
  const [heads, width] = blocks === undefined ? [H, d] : [Hkv, G * d];
  const qHeads: tf.Tensor2D = tf.reshape(
    tf.transpose(tf.reshape(tf.mul(qRot, net.scale), [B, T, heads, width]), [0, 2, 1, 3]),
    [B * Hkv, G * T * d],
  );
  let kT: tf.Tensor4D = tf.transpose(tf.reshape(kRot, [B, T, Hkv, d]), [0, 2, 3, 1]); // [B, Hkv, d, T]
  let vH: tf.Tensor4D = tf.transpose(tf.reshape(v, [B, T, Hkv, d]), [0, 2, 1, 3]); // [B, Hkv, T, d]
  if (cache !== undefined) {
    const pastK = cache.keys[layer] ?? null;
    const pastV = cache.values[layer] ?? null;
    if (pastK !== null && pastV !== null) {
      kT = tf.concat([pastK, kT], 3);
      vH = tf.concat([pastV, vH], 2);
    }
    cache.keys[layer] = tf.keep(kT);
    cache.values[layer] = tf.keep(vH);
    pastK?.dispose();
    pastV?.dispose();
  }
  const S = step.past + T;
  if (step.trace) {
    step.trace(`layers.${layer}.attn_in`, tf.reshape(x, [B, T, E]));
    step.trace(`layers.${layer}.q_rot`, tf.reshape(qRot, [B, T, H, d]));
    step.trace(`layers.${layer}.k_all`, tf.transpose(kT, [0, 1, 3, 2]));
    step.trace(`layers.${layer}.v_all`, vH);
  }
  const attnDims = { batch: B, kvHeads: Hkv, groups: G, T, S, d };
  const kT2d: tf.Tensor2D = tf.reshape(kT, [B * Hkv, d * S]);
  const v2d: tf.Tensor2D = tf.reshape(vH, [B * Hkv, S * d]);
  const ctx =
    blocks === undefined
      ? attention(qHeads, kT2d, v2d, step.masks, attnDims)
      : attentionInBlocks(qHeads, kT2d, v2d, step.masks, blocks, attnDims);
  const ctx2d: tf.Tensor2D = tf.reshape(tf.transpose(tf.reshape(ctx, [B, heads, T, width]), [0, 2, 1, 3]), [
    N,
    H * d,
  ]);
  step.trace?.(`layers.${layer}.ctx`, tf.reshape(ctx2d, [B, T, H, d]));
  // hiddenRows: the rows whose outputs are wanted; o_proj (and the rest of the layer) runs on them only.
  const out = linearModule(net, keep === undefined ? ctx2d : pickRows(ctx2d, keep), `${p}.o_proj`, step);
  step.trace?.(
    `layers.${layer}.attn_out`,
    tf.reshape(out, keep === undefined ? [B, T, E] : [1, keep.length, E]),
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// LlamaMLP: down_proj(silu(gate_proj(x)) * up_proj(x)).

function mlp(net: Net, x: tf.Tensor2D, layer: number, step: Step): tf.Tensor2D {
  const p = `model.layers.${layer}.mlp`;
  const act = swiglu(
    linearModule(net, x, `${p}.gate_proj`, step),
    linearModule(net, x, `${p}.up_proj`, step),
  );
  return linearModule(net, act, `${p}.down_proj`, step);
}

// ---------------------------------------------------------------------------------------------------------
// LlamaDecoderLayer: pre-norm attention and MLP blocks, each added to the residual stream.

function decoderLayer(
  net: Net,
  x: tf.Tensor2D,
  layer: number,
  step: Step,
  cache: KVCache | undefined,
  keep?: Int32Array,
): tf.Tensor2D {
  const p = `model.layers.${layer}`;
  const { eps } = net.dims;
  const h = rmsNorm(x, vector(net, `${p}.input_layernorm.weight`), eps);
  const attn = selfAttn(net, h, layer, step, cache, keep);
  const x1 = residualAdd(keep === undefined ? x : pickRows(x, keep), attn);
  const h2 = rmsNorm(x1, vector(net, `${p}.post_attention_layernorm.weight`), eps);
  return residualAdd(x1, mlp(net, h2, layer, step));
}

/**
 * Gradient checkpointing of one layer: the tape sees a single op whose inputs are the layer input and the
 * layer's trainable variables; its gradient re-runs the layer under a fresh tape. The layer's linear products
 * (7 per layer, ~10 MB at 512 tokens of the SmolLM-135M shape) are kept from the first pass and replayed, so
 * the recomputation costs elementwise work and attention, not another round of matrix products.
 */
function checkpointedLayer(
  net: Net,
  x: tf.Tensor2D,
  layer: number,
  step: Step,
  keep: Int32Array | undefined,
): tf.Tensor2D {
  const vars = layerTrainables(net.model, layer);
  // Dropout masks must be identical in the recomputation: replay the RNG from its state now.
  const rngState = step.rng.getState();
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xin = args[0] as tf.Tensor2D;
    const products: NonNullable<Step["products"]> = { mode: "record", outputs: [], next: 0 };
    const value = decoderLayer(net, xin, layer, { ...step, trace: undefined, products }, undefined, keep);
    // The step's tensors (RoPE tables, masks) belong to the forward's scope: keep copies for the recompute.
    const masksCount = step.masks.length;
    save([xin, step.cos, step.sin, ...step.masks, ...products.outputs]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, cos, sin] = saved as [tf.Tensor2D, tf.Tensor3D, tf.Tensor3D];
        const replay = createRng(0);
        replay.setState(rngState);
        const again: Step = {
          ...step,
          cos,
          sin,
          masks: saved.slice(3, 3 + masksCount) as tf.Tensor2D[],
          rng: replay,
          trace: undefined,
          products: { mode: "replay", outputs: saved.slice(3 + masksCount) as tf.Tensor2D[], next: 0 },
        };
        // The variables are inputs of this op so that their gradients flow; the recompute reads them
        // through the weight maps, which are the same tensors.
        return withOuterTape(() =>
          tf.grads((xx: tf.Tensor) => decoderLayer(net, xx as tf.Tensor2D, layer, again, undefined, keep))(
            [xs, ...vars],
            dy,
          ),
        );
      },
    };
  });
  return f(x, ...vars) as tf.Tensor2D;
}

/** The trainable variables of one decoder layer (its base weights in full fine-tuning, its adapters' A/B). */
function layerTrainables(model: CausalLM, layer: number): tf.Variable[] {
  const prefix = `model.layers.${layer}.`;
  const out: tf.Variable[] = [];
  for (const [name, v] of model.namedTrainableVariables()) {
    // HF names (`model.layers.N...`) or `<adapter>/base_model.model.model.layers.N...`
    const key = name.includes("/base_model.model.") ? name.split("/base_model.model.")[1] : name;
    if (key?.startsWith(prefix)) out.push(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// LlamaForCausalLM: the model around the layers, and the lm_head.

/** Build a model around already created weights (see io.ts for loading, saving and random init). */
export function buildCausalLM(config: ModelConfig, weights: Map<string, tf.Variable>, seed = 0): CausalLM {
  const dims = dimsOf(config);
  for (const spec of weightSpecs(config)) {
    const w = weights.get(spec.name);
    if (w === undefined) throw new HippoError("INVALID_ARGUMENT", "missing weight", { key: spec.name });
    if (w.shape.join(",") !== spec.shape.join(",")) {
      throw new HippoError("INVALID_ARGUMENT", "weight has the wrong shape", {
        key: spec.name,
        expected: `[${spec.shape}]`,
        got: `[${w.shape}]`,
      });
    }
  }
  const invFreq = ropeInvFreq(config);
  const defaultRng = createRng(seed);
  const adapters = new Map<string, LoraAdapter>();
  const rot = tf.keep(tf.tensor2d(rotateHalfMatrix(dims.headDim), [dims.headDim, dims.headDim]));
  const transposes = createTransposeCache(weights, () => model.transposeCacheBytes);

  const model: CausalLM = {
    config,
    dims,
    weights,
    adapters,
    activeAdapters: [],
    adaptersEnabled: true,
    transposeCacheBytes: 1024 * 1024 * 1024,
    forward,
    attentionLayer,
    lmHead: (hidden) => lmHead(net, hidden),
    tokenLogProbs: (hidden, targets, rows) => headLogProbs(net, hidden, targets, rows),
    trainableVariables: () => [...namedTrainableVariables().values()],
    namedTrainableVariables,
    setFullFineTuning(on: boolean) {
      for (const w of weights.values()) w.trainable = on;
      if (on) transposes.clear();
    },
    createCache: (batch: number) => createCache(batch, dims.layers),
    dispose() {
      for (const w of weights.values()) w.dispose();
      for (const a of adapters.values()) {
        for (const v of a.a.values()) v.dispose();
        for (const v of a.b.values()) v.dispose();
      }
      adapters.clear();
      rot.dispose();
      transposes.clear();
    },
  };
  const net: Net = { dims, model, transposes, rot, scale: 1 / Math.sqrt(dims.headDim) };

  function namedTrainableVariables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [k, w] of weights) if (w.trainable) out.set(k, w);
    if (!model.adaptersEnabled) return out;
    for (const name of model.activeAdapters) {
      const a = adapters.get(name);
      if (a === undefined) continue;
      for (const [k, va] of a.a) {
        const base = `${name}/base_model.model.${k.replace(/\.weight$/, "")}`;
        if (va.trainable) out.set(`${base}.lora_A.weight`, va);
        const vb = a.b.get(k);
        if (vb?.trainable) out.set(`${base}.lora_B.weight`, vb);
      }
    }
    return out;
  }

  function forwardStep(B: number, T: number, options: ForwardOptions, cache: KVCache | undefined) {
    const plan = planStep(B, T, options, cache, dims, invFreq);
    return () =>
      stepTensors(plan, dims.headDim, {
        training: options.training ?? false,
        rng: options.rng ?? defaultRng,
        trace: options.trace,
      });
  }

  function attentionLayer(layer: number, x: tf.Tensor3D, options: ForwardOptions = {}): tf.Tensor3D {
    const [B, T, E] = x.shape;
    if (E !== dims.hidden || !Number.isInteger(layer) || layer < 0 || layer >= dims.layers) {
      throw new HippoError(
        "INVALID_ARGUMENT",
        "attentionLayer needs a valid layer and [B, T, hidden] input",
        {
          expected: `layer < ${dims.layers}, hidden ${dims.hidden}`,
          got: `layer ${layer}, [${x.shape}]`,
        },
      );
    }
    const makeStep = forwardStep(B, T, options, options.cache);
    return tf.tidy(() =>
      tf.reshape(selfAttn(net, tf.reshape(x, [B * T, E]), layer, makeStep(), options.cache), [B, T, E]),
    );
  }

  function forward(inputIds: number[][], options: ForwardOptions = {}): ForwardOutput {
    const { B, T, flatIds, keep } = checkInputs(inputIds, options, dims.vocab);
    const cache = options.cache;
    const mode = options.logits ?? "all";
    if (keep !== undefined && mode === "last") {
      throw new HippoError("INVALID_ARGUMENT", 'hiddenRows and logits "last" exclude each other', {
        key: "hiddenRows",
        expected: 'logits "all" or "none" with hiddenRows',
      });
    }
    // Planning records this step in the cache: only after every check.
    const makeStep = forwardStep(B, T, options, cache);
    // [B, T] or, with hiddenRows, [1, rows]: the shape of what comes out of the last layer.
    const [outB, outT] = keep === undefined ? [B, T] : [1, keep.length];
    const result = tf.tidy(() => {
      const trace = options.trace;
      const step = makeStep();
      let x = embedding(matrix(net, "model.embed_tokens.weight"), tf.tensor1d(flatIds, "int32"));
      trace?.("embeddings", tf.reshape(x, [B, T, dims.hidden]));
      const checkpoint = options.checkpointLayers === true && cache === undefined;
      for (let l = 0; l < dims.layers; l++) {
        // A scope per layer frees its intermediates at once (a tape keeps what backward needs by itself).
        const input = x;
        const rows = l === dims.layers - 1 ? keep : undefined;
        x = tf.tidy(() =>
          checkpoint
            ? checkpointedLayer(net, input, l, step, rows)
            : decoderLayer(net, input, l, step, cache, rows),
        );
        trace?.(
          `layers.${l}`,
          tf.reshape(x, rows === undefined ? [B, T, dims.hidden] : [outB, outT, dims.hidden]),
        );
      }
      const h = rmsNorm(x, vector(net, "model.norm.weight"), dims.eps);
      trace?.("final_norm", tf.reshape(h, [outB, outT, dims.hidden]));
      let logits: tf.Tensor = tf.zeros([0]);
      if (mode === "all") logits = tf.reshape(lmHead(net, h), [outB, outT, dims.vocab]);
      else if (mode === "last") {
        const lastRows = tf.tensor1d(
          Array.from({ length: B }, (_, b) => b * T + T - 1),
          "int32",
        );
        logits = tf.reshape(lmHead(net, tf.gather(h, lastRows)), [B, 1, dims.vocab]);
      }
      return [logits, options.outputHidden ? tf.reshape(h, [outB, outT, dims.hidden]) : tf.zeros([0])];
    });
    const [logits, hidden] = result as [tf.Tensor3D, tf.Tensor3D];
    if (mode === "none") logits.dispose();
    if (!options.outputHidden) hidden.dispose();
    return { logits: mode === "none" ? null : logits, hidden: options.outputHidden ? hidden : null };
  }

  return model;
}

/** lm_head on [rows, hidden]: the untied `lm_head.weight` [hidden, vocab], or the tied embedding's E^T. */
function lmHead(net: Net, hidden: tf.Tensor2D): tf.Tensor2D {
  if (!net.dims.tied) {
    return linear(hidden, matrix(net, "lm_head.weight"), () => net.transposes.get("lm_head.weight"));
  }
  const emb = net.model.weights.get("model.embed_tokens.weight") as tf.Variable<tf.Rank.R2>;
  if (emb.trainable) return tf.tidy(() => tiedHead(hidden, emb, tf.transpose(emb)));
  return tiedHead(hidden, emb, net.transposes.get("model.embed_tokens.weight", false) as tf.Tensor2D);
}

/** tokenLogProbs (ops.ts) through the model's head, tied or not, frozen or trainable. */
function headLogProbs(
  net: Net,
  hidden: tf.Tensor2D,
  targets: ArrayLike<number>,
  rows: ArrayLike<number> | undefined,
): tf.Tensor1D {
  if (!net.dims.tied) {
    const w = net.model.weights.get("lm_head.weight") as tf.Variable<tf.Rank.R2>;
    const wT = () => net.transposes.get("lm_head.weight") ?? tf.transpose(w);
    return tokenLogProbs(hidden, targets, w, wT, w.trainable ? w : null, false, rows);
  }
  const emb = net.model.weights.get("model.embed_tokens.weight") as tf.Variable<tf.Rank.R2>;
  if (emb.trainable) {
    return tf.tidy(() => tokenLogProbs(hidden, targets, tf.transpose(emb), () => emb, emb, true, rows));
  }
  const embT = net.transposes.get("model.embed_tokens.weight", false) as tf.Tensor2D;
  return tokenLogProbs(hidden, targets, embT, () => emb, null, true, rows);
}

/** Validate the forward's inputs; returns the flattened ids. */
function checkInputs(
  inputIds: number[][],
  options: ForwardOptions,
  vocab: number,
): { B: number; T: number; flatIds: Int32Array; keep: Int32Array | undefined } {
  const B = inputIds.length;
  const T = B > 0 ? (inputIds[0] as number[]).length : 0;
  if (B === 0 || T === 0)
    throw new HippoError("INVALID_ARGUMENT", "inputIds must be a non-empty [batch, seq] array");
  const flatIds = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const row = inputIds[b] as number[];
    if (!Array.isArray(row) || row.length !== T) {
      throw new HippoError("INVALID_ARGUMENT", "inputIds rows must all have the same length", {
        row: b,
        expected: String(T),
        got: String(Array.isArray(row) ? row.length : typeof row),
      });
    }
    for (let t = 0; t < T; t++) {
      const id = row[t] as number;
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new HippoError("INVALID_ARGUMENT", "token id out of range", {
          row: b,
          key: `inputIds[${b}][${t}]`,
          expected: `integer in [0, ${vocab})`,
          got: String(id),
        });
      }
      flatIds[b * T + t] = id;
    }
  }
  checkMatrix("attentionMask", options.attentionMask, B, T);
  checkMatrix("positionIds", options.positionIds, B, T);
  checkMatrix("segmentIds", options.segmentIds, B, T);
  checkMatrix("parentSegmentIds", options.parentSegmentIds, B, T);
  const cache = options.cache;
  if (cache !== undefined) {
    if (cache.disposed) throw new HippoError("INVALID_ARGUMENT", "the cache was disposed");
    if (cache.batch !== B) {
      throw new HippoError("INVALID_ARGUMENT", "cache batch differs from the input batch", {
        expected: String(cache.batch),
        got: String(B),
      });
    }
  }
  return { B, T, flatIds, keep: checkRows(options.hiddenRows, B * T) };
}

/** hiddenRows as distinct slots in [0, slots), or undefined. */
function checkRows(rows: ArrayLike<number> | undefined, slots: number): Int32Array | undefined {
  if (rows === undefined) return undefined;
  if (rows.length === 0) {
    throw new HippoError("INVALID_ARGUMENT", "hiddenRows must name at least one slot", { key: "hiddenRows" });
  }
  const seen = new Uint8Array(slots);
  const out = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as number;
    if (!Number.isInteger(r) || r < 0 || r >= slots || seen[r]) {
      throw new HippoError("INVALID_ARGUMENT", "hiddenRows must be distinct slots b * T + t of the batch", {
        key: `hiddenRows[${i}]`,
        expected: `distinct integers in [0, ${slots})`,
        got: String(r),
      });
    }
    seen[r] = 1;
    out[i] = r;
  }
  return out;
}

function checkMatrix(name: string, m: number[][] | undefined, B: number, T: number): void {
  if (m === undefined) return;
  if (!Array.isArray(m) || m.length !== B || m.some((r) => !Array.isArray(r) || r.length !== T)) {
    throw new HippoError("INVALID_ARGUMENT", `${name} must have the shape of inputIds`, {
      key: name,
      expected: `[${B}, ${T}]`,
      got: Array.isArray(m) ? `${m.length} rows` : typeof m,
    });
  }
}
