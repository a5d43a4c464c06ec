/**
 * LlamaForCausalLM / MistralForCausalLM in TensorFlow.js, following transformers' modeling_llama.py:
 *
 *   h = embed_tokens(ids)
 *   for each layer:  h = h + o_proj(attn(rope(q_proj(norm(h))), rope(k_proj(norm(h))), v_proj(norm(h))))
 *                    h = h + down_proj(silu(gate_proj(norm(h))) * up_proj(norm(h)))
 *   logits = lm_head(norm(h))
 *
 * Mistral is the same network with a sliding-window mask (a query at cache index i sees keys j with
 * i - window < j <= i, as transformers' `sliding_window_overlay`), so both live here.
 *
 * Activations are kept 2-D, [batch * seq, features], around every linear layer; see ops.ts for why.
 */
import { createRng, HippoError, type ModelConfig, type Rng } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { createCache, type KVCache } from "./cache.js";
import { type Dims, dimsOf, ropeInvFreq, ropeTables } from "./config.js";
import type { LoraAdapter } from "./lora.js";
import {
  applyRope,
  attention,
  embedding,
  linear,
  linearWithValue,
  loraAdd,
  residualAdd,
  rmsNorm,
  rotateHalfMatrix,
  swiglu,
  tiedHead,
  tokenLogProbs,
} from "./ops.js";
import { type LinearModule, linearWeightName, weightSpecs } from "./weights.js";

export interface ForwardOptions {
  /** [B, T]: 1 for real tokens, 0 for padding (left or right). Covers the new tokens only; a cache remembers the past. */
  attentionMask?: number[][];
  /** [B, T] explicit position ids. Default: count of earlier real tokens of the same segment (HF generate's rule). */
  positionIds?: number[][];
  /** [B, T] document index of each token in packed sequences: attention stays within a segment, positions restart. */
  segmentIds?: number[][];
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
   * `layers.N.attn_out` [B,T,E]). Read or clone them inside the callback: they are disposed afterwards.
   */
  trace?: (name: string, t: tf.Tensor) => void;
}

export interface ForwardOutput {
  /** [B, T, vocab] ("all"), [B, 1, vocab] ("last") or null ("none"). */
  logits: tf.Tensor3D | null;
  /** [B, T, hidden] after the final norm, when outputHidden. */
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
   * never exist at once; differentiable (fast-path gradients). Negative targets (IGNORE_INDEX) give 0.
   * The memory-lean way to a training loss: loss = -sum(logp) / count.
   */
  tokenLogProbs(hidden: tf.Tensor2D, targets: ArrayLike<number>): tf.Tensor1D;
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

const MASKED = -1e9;

interface StepInfo {
  batch: number;
  T: number;
  /** Cached slots before this step. */
  past: number;
  /** [B*T, 1, d] cos/sin for each token's position. */
  cos: tf.Tensor3D;
  sin: tf.Tensor3D;
  /** Additive masks [T, past + T], one per row or one shared. */
  masks: tf.Tensor2D[];
  training: boolean;
  rng: Rng;
  trace: ForwardOptions["trace"];
  /**
   * Gradient checkpointing: the first pass records each linear module's base product x W in call order; the
   * recomputation replays them (linearWithValue) instead of multiplying again.
   */
  products?: { mode: "record" | "replay"; outputs: tf.Tensor2D[]; next: number };
}

function checkMatrix(name: string, m: number[][] | undefined, B: number, T: number): void {
  if (m === undefined) return;
  if (!Array.isArray(m) || m.length !== B || m.some((r) => !Array.isArray(r) || r.length !== T)) {
    throw new HippoError("INVALID_ARGUMENT", `${name} must have the shape of inputIds`, {
      key: name,
      expected: `[${B}, ${T}]`,
    });
  }
}

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
  const rot = tf.keep(tf.tensor2d(rotateHalfMatrix(dims.headDim), [dims.headDim, dims.headDim]));
  const adapters = new Map<string, LoraAdapter>();
  const defaultRng = createRng(seed);
  const scale = 1 / Math.sqrt(dims.headDim);
  // Transposes of frozen weights (E^T for a tied head, W^T for the gradients of frozen linear layers), each
  // valid while its weight holds the same data: an assign (merging an adapter, loading) gives the variable
  // a new dataId, and the stale copy is replaced. Linear transposes stop at a budget (they double the
  // weights' memory: model.transposeCacheBytes); the tied head's E^T is always kept.
  const transposes = new Map<string, { dataId: object; t: tf.Tensor2D }>();
  let transposeBytes = 0;

  function frozenTranspose(name: string, budgeted = true): tf.Tensor2D | null {
    const w = weights.get(name);
    if (w === undefined || w.trainable) return null;
    const hit = transposes.get(name);
    if (hit !== undefined && hit.dataId === w.dataId) return hit.t;
    if (hit !== undefined) dropTranspose(name);
    if (budgeted && transposeBytes + w.size * 4 > model.transposeCacheBytes) return null;
    // kept: it is created inside whatever scope first asks for it
    const t = tf.keep(tf.transpose(w as unknown as tf.Tensor2D));
    transposes.set(name, { dataId: w.dataId, t });
    transposeBytes += w.size * 4;
    return t;
  }

  function dropTranspose(name: string): void {
    const hit = transposes.get(name);
    if (hit === undefined) return;
    hit.t.dispose();
    transposeBytes -= hit.t.size * 4;
    transposes.delete(name);
  }

  const W = (name: string): tf.Tensor2D => {
    const w = weights.get(name);
    if (w === undefined) throw new HippoError("INTERNAL", "weight not found", { key: name });
    return w as unknown as tf.Tensor2D;
  };

  const model: CausalLM = {
    config,
    dims,
    weights,
    adapters,
    activeAdapters: [],
    adaptersEnabled: true,
    transposeCacheBytes: 1024 * 1024 * 1024,
    forward,
    attentionLayer: (layer, x, options) => attentionLayer(layer, x, options),
    lmHead,
    tokenLogProbs: headLogProbs,
    trainableVariables,
    namedTrainableVariables,
    setFullFineTuning(on: boolean) {
      for (const w of weights.values()) w.trainable = on;
      if (on) for (const name of [...transposes.keys()]) dropTranspose(name);
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
      for (const name of [...transposes.keys()]) dropTranspose(name);
    },
  };

  function trainableVariables(): tf.Variable[] {
    return [...namedTrainableVariables().values()];
  }

  function namedTrainableVariables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [k, w] of weights) if (w.trainable) out.set(k, w);
    if (model.adaptersEnabled) {
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
    }
    return out;
  }

  /** A linear module of a layer, with the active LoRA adapters added: y = x W + dropout(x) A B * scaling. */
  function proj(x: tf.Tensor2D, layer: number, module: LinearModule, step: StepInfo): tf.Tensor2D {
    const name = linearWeightName(layer, module);
    const products = step.products;
    let y: tf.Tensor2D;
    if (products?.mode === "replay") {
      const value = products.outputs[products.next++];
      if (value === undefined) throw new HippoError("INTERNAL", "checkpoint replay ran out of products");
      y = linearWithValue(x, W(name), value, () => frozenTranspose(name));
    } else {
      y = linear(x, W(name), () => frozenTranspose(name));
      products?.outputs.push(y);
    }
    if (!model.adaptersEnabled) return y;
    for (const adapterName of model.activeAdapters) {
      const a = adapters.get(adapterName);
      const A = a?.a.get(name);
      const B = a?.b.get(name);
      if (a === undefined || A === undefined || B === undefined) continue;
      let xin = x;
      const p = a.config.dropout;
      if (step.training && p > 0) {
        // Inverted dropout as torch.nn.Dropout: keep with probability 1 - p, scale by 1 / (1 - p).
        const keep = new Float32Array(x.size);
        for (let i = 0; i < keep.length; i++) keep[i] = step.rng.next() < p ? 0 : 1 / (1 - p);
        xin = tf.mul(x, tf.tensor2d(keep, x.shape));
      }
      y = loraAdd(y, xin, A as unknown as tf.Tensor2D, B as unknown as tf.Tensor2D, a.scaling);
    }
    return y;
  }

  function selfAttention(
    x: tf.Tensor2D,
    layer: number,
    step: StepInfo,
    cache: KVCache | undefined,
  ): tf.Tensor2D {
    const { batch: B, T } = step;
    const { heads: H, kvHeads: Hkv, headDim: d, groups: G } = dims;
    const N = B * T;
    const q = proj(x, layer, "q_proj", step);
    const k = proj(x, layer, "k_proj", step);
    const v = proj(x, layer, "v_proj", step);
    const qRot = applyRope(tf.reshape(q, [N, H, d]), step.cos, step.sin, rot);
    const kRot = applyRope(tf.reshape(k, [N, Hkv, d]), step.cos, step.sin, rot);
    // [B, T, H, d] -> [B, H, T, d]; the G query heads of a KV head are adjacent (HF repeat_kv order).
    const qHeads: tf.Tensor2D = tf.reshape(
      tf.transpose(tf.reshape(tf.mul(qRot, scale), [B, T, H, d]), [0, 2, 1, 3]),
      [B * Hkv, G * T * d],
    );
    let kT = tf.transpose(tf.reshape(kRot, [B, T, Hkv, d]), [0, 2, 3, 1]) as tf.Tensor4D; // [B, Hkv, d, T]
    let vH = tf.transpose(tf.reshape(v, [B, T, Hkv, d]), [0, 2, 1, 3]) as tf.Tensor4D; // [B, Hkv, T, d]
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
      step.trace(`layers.${layer}.attn_in`, tf.reshape(x, [B, T, dims.hidden]));
      step.trace(`layers.${layer}.q_rot`, tf.reshape(qRot, [B, T, H, d]));
      step.trace(`layers.${layer}.k_all`, tf.transpose(kT, [0, 1, 3, 2]));
      step.trace(`layers.${layer}.v_all`, vH);
    }
    const ctx = attention(
      qHeads,
      tf.reshape(kT, [B * Hkv, d * S]),
      tf.reshape(vH, [B * Hkv, S * d]),
      step.masks,
      {
        batch: B,
        kvHeads: Hkv,
        groups: G,
        T,
        S,
        d,
      },
    );
    const ctx2d: tf.Tensor2D = tf.reshape(tf.transpose(tf.reshape(ctx, [B, H, T, d]), [0, 2, 1, 3]), [
      N,
      H * d,
    ]);
    const out = proj(ctx2d, layer, "o_proj", step);
    if (step.trace) {
      step.trace(`layers.${layer}.ctx`, tf.reshape(ctx2d, [B, T, H, d]));
      step.trace(`layers.${layer}.attn_out`, tf.reshape(out, [B, T, dims.hidden]));
    }
    return out;
  }

  function decoderLayer(
    x: tf.Tensor2D,
    layer: number,
    step: StepInfo,
    cache: KVCache | undefined,
  ): tf.Tensor2D {
    const p = `model.layers.${layer}`;
    const h = rmsNorm(x, W(`${p}.input_layernorm.weight`) as unknown as tf.Tensor1D, dims.eps);
    const x1 = residualAdd(x, selfAttention(h, layer, step, cache));
    const h2: tf.Tensor2D = rmsNorm(
      x1,
      W(`${p}.post_attention_layernorm.weight`) as unknown as tf.Tensor1D,
      dims.eps,
    );
    const act = swiglu(proj(h2, layer, "gate_proj", step), proj(h2, layer, "up_proj", step));
    return residualAdd(x1, proj(act, layer, "down_proj", step));
  }

  /**
   * Gradient checkpointing of one layer: the tape sees a single op whose inputs are the layer input and the
   * layer's trainable variables; its gradient re-runs the layer under a fresh tape. The layer's linear products
   * (7 per layer, ~10 MB at 512 tokens of the SmolLM-135M shape) are kept from the first pass and replayed, so
   * the recomputation costs elementwise work and attention, not another round of matrix products.
   */
  function checkpointedLayer(x: tf.Tensor2D, layer: number, step: StepInfo): tf.Tensor2D {
    const vars = layerTrainables(layer);
    // Dropout masks must be identical in the recomputation: replay the RNG from its state now.
    const rngState = step.rng.getState();
    const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const save = args[args.length - 1] as tf.GradSaveFunc;
      const xin = args[0] as tf.Tensor2D;
      const products: NonNullable<StepInfo["products"]> = { mode: "record", outputs: [], next: 0 };
      const value = decoderLayer(xin, layer, { ...step, trace: undefined, products }, undefined);
      // The step's tensors (RoPE tables, masks) belong to the forward's scope: keep copies for the recompute.
      const masksCount = step.masks.length;
      save([xin, step.cos, step.sin, ...step.masks, ...products.outputs]);
      return {
        value,
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [xs, cos, sin] = saved as [tf.Tensor2D, tf.Tensor3D, tf.Tensor3D];
          const masks = saved.slice(3, 3 + masksCount) as tf.Tensor2D[];
          const outputs = saved.slice(3 + masksCount) as tf.Tensor2D[];
          const again: StepInfo = {
            ...step,
            cos,
            sin,
            masks,
            trace: undefined,
            products: { mode: "replay", outputs, next: 0 },
          };
          const replay = createRng(0);
          replay.setState(rngState);
          const engine = tf.engine() as unknown as { state: { activeTape: unknown } };
          // A nested gradient computation resets the engine's tape; keep the outer one for its cleanup.
          const outerTape = engine.state.activeTape;
          try {
            // The variables are inputs of this op so that their gradients flow; the recompute reads them
            // through the weight maps, which are the same tensors.
            return tf.grads((xx: tf.Tensor) =>
              decoderLayer(xx as tf.Tensor2D, layer, { ...again, rng: replay }, undefined),
            )([xs, ...vars], dy);
          } finally {
            engine.state.activeTape = outerTape;
          }
        },
      };
    });
    return f(x, ...vars) as tf.Tensor2D;
  }

  function layerTrainables(layer: number): tf.Variable[] {
    const prefix = `model.layers.${layer}.`;
    return trainableVariables().filter((v) => {
      for (const [k, w] of weights) if (w === v) return k.startsWith(prefix);
      for (const a of adapters.values()) {
        for (const [k, va] of a.a) if (va === v) return k.startsWith(prefix);
        for (const [k, vb] of a.b) if (vb === v) return k.startsWith(prefix);
      }
      return false;
    });
  }

  function lmHead(hidden: tf.Tensor2D): tf.Tensor2D {
    if (!dims.tied) return linear(hidden, W("lm_head.weight"), () => frozenTranspose("lm_head.weight"));
    const emb = W("model.embed_tokens.weight") as unknown as tf.Tensor2D;
    if (emb instanceof tf.Variable && emb.trainable) {
      return tf.tidy(() => tiedHead(hidden, emb, tf.transpose(emb)));
    }
    return tiedHead(hidden, emb, frozenTranspose("model.embed_tokens.weight", false) as tf.Tensor2D);
  }

  function headLogProbs(hidden: tf.Tensor2D, targets: ArrayLike<number>): tf.Tensor1D {
    if (!dims.tied) {
      const w = weights.get("lm_head.weight") as tf.Variable;
      return tokenLogProbs(
        hidden,
        targets,
        w as unknown as tf.Tensor2D,
        () => frozenTranspose("lm_head.weight") ?? (tf.transpose(w) as tf.Tensor2D),
        w.trainable ? w : null,
        false,
      );
    }
    const emb = weights.get("model.embed_tokens.weight") as tf.Variable;
    const emb2d = emb as unknown as tf.Tensor2D;
    if (emb.trainable)
      return tf.tidy(() => tokenLogProbs(hidden, targets, tf.transpose(emb2d), () => emb2d, emb, true));
    const embT = frozenTranspose("model.embed_tokens.weight", false) as tf.Tensor2D;
    return tokenLogProbs(hidden, targets, embT, () => emb2d, null, true);
  }

  /** Positions, masks and cache bookkeeping of one forward step, computed in JS. */
  function prepareStep(B: number, T: number, options: ForwardOptions, cache: KVCache | undefined) {
    const past = cache?.length ?? 0;
    const S = past + T;

    // Per row: validity, segment and position of every slot (cached + new), computed in JS.
    const positions = new Int32Array(B * T);
    const maskRows: Float32Array[] = [];
    let shared = true;
    for (let b = 0; b < B; b++) {
      const valid = new Uint8Array(S);
      const seg = new Int32Array(S);
      if (cache !== undefined) {
        valid.set(cache.valid[b] as Uint8Array);
        seg.set(cache.segments[b] as Int32Array);
      }
      for (let t = 0; t < T; t++) {
        valid[past + t] = options.attentionMask ? ((options.attentionMask[b] as number[])[t] ? 1 : 0) : 1;
        seg[past + t] = options.segmentIds ? ((options.segmentIds[b] as number[])[t] as number) : 0;
      }
      for (let t = 0; t < T; t++) {
        const i = past + t;
        if (options.positionIds) {
          positions[b * T + t] = (options.positionIds[b] as number[])[t] as number;
        } else if (!valid[i]) {
          positions[b * T + t] = 1; // HF fills padded positions with 1; their outputs are never used
        } else {
          let n = 0;
          for (let j = 0; j < i; j++) if (valid[j] && seg[j] === seg[i]) n++;
          positions[b * T + t] = n;
        }
      }
      const mask = new Float32Array(T * S);
      const window = dims.slidingWindow;
      const prefixVisible = options.prefixVisible === true && cache !== undefined;
      for (let t = 0; t < T; t++) {
        const i = past + t;
        for (let j = 0; j < S; j++) {
          const sameSegment = seg[j] === seg[i] || (prefixVisible && j < past);
          const ok = j <= i && valid[j] === 1 && sameSegment && (window === null || j > i - window);
          mask[t * S + j] = ok ? 0 : MASKED;
        }
      }
      if (b > 0 && shared) {
        const first = maskRows[0] as Float32Array;
        for (let k = 0; k < mask.length; k++) {
          if (mask[k] !== first[k]) {
            shared = false;
            break;
          }
        }
      }
      maskRows.push(mask);
      if (cache !== undefined) {
        cache.valid[b] = valid;
        cache.segments[b] = seg;
      }
    }
    if (cache !== undefined) cache.length = S;
    const { cos, sin } = ropeTables(invFreq, positions);
    return { past, S, cos, sin, maskRows: shared ? maskRows.slice(0, 1) : maskRows };
  }

  function makeStep(
    B: number,
    T: number,
    prep: ReturnType<typeof prepareStep>,
    options: ForwardOptions,
  ): StepInfo {
    return {
      batch: B,
      T,
      past: prep.past,
      cos: tf.tensor3d(prep.cos, [B * T, 1, dims.headDim]),
      sin: tf.tensor3d(prep.sin, [B * T, 1, dims.headDim]),
      masks: prep.maskRows.map((m) => tf.tensor2d(m, [T, prep.S])),
      training: options.training ?? false,
      rng: options.rng ?? defaultRng,
      trace: options.trace,
    };
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
    const prep = prepareStep(B, T, options, options.cache);
    return tf.tidy(() => {
      const step = makeStep(B, T, prep, options);
      return tf.reshape(selfAttention(tf.reshape(x, [B * T, E]), layer, step, options.cache), [B, T, E]);
    });
  }

  function forward(inputIds: number[][], options: ForwardOptions = {}): ForwardOutput {
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
        if (!Number.isInteger(id) || id < 0 || id >= dims.vocab) {
          throw new HippoError("INVALID_ARGUMENT", "token id out of range", {
            row: b,
            key: `inputIds[${b}][${t}]`,
            expected: `integer in [0, ${dims.vocab})`,
            got: String(id),
          });
        }
        flatIds[b * T + t] = id;
      }
    }
    checkMatrix("attentionMask", options.attentionMask, B, T);
    checkMatrix("positionIds", options.positionIds, B, T);
    checkMatrix("segmentIds", options.segmentIds, B, T);
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
    const prep = prepareStep(B, T, options, cache);

    const result = tf.tidy(() => {
      const trace = options.trace;
      const step = makeStep(B, T, prep, options);
      let x = embedding(
        W("model.embed_tokens.weight") as unknown as tf.Tensor2D,
        tf.tensor1d(flatIds, "int32"),
      );
      trace?.("embeddings", tf.reshape(x, [B, T, dims.hidden]));
      const checkpoint = options.checkpointLayers === true && cache === undefined;
      for (let l = 0; l < dims.layers; l++) {
        // A scope per layer frees its intermediates at once (a tape keeps what backward needs by itself).
        const input = x;
        x = tf.tidy(() =>
          checkpoint ? checkpointedLayer(input, l, step) : decoderLayer(input, l, step, cache),
        );
        trace?.(`layers.${l}`, tf.reshape(x, [B, T, dims.hidden]));
      }
      const h = rmsNorm(x, W("model.norm.weight") as unknown as tf.Tensor1D, dims.eps);
      trace?.("final_norm", tf.reshape(h, [B, T, dims.hidden]));
      const mode = options.logits ?? "all";
      let logits: tf.Tensor3D | null = null;
      if (mode === "all") logits = tf.reshape(lmHead(h), [B, T, dims.vocab]);
      else if (mode === "last") {
        const lastRows = tf.tensor1d(
          Array.from({ length: B }, (_, b) => b * T + T - 1),
          "int32",
        );
        logits = tf.reshape(lmHead(tf.gather(h, lastRows)), [B, 1, dims.vocab]);
      }
      const out: tf.Tensor[] = [
        logits ?? tf.zeros([0]),
        options.outputHidden ? tf.reshape(h, [B, T, dims.hidden]) : tf.zeros([0]),
      ];
      return out;
    });
    const [logits, hidden] = result as [tf.Tensor3D, tf.Tensor3D];
    const mode = options.logits ?? "all";
    if (mode === "none") logits.dispose();
    if (!options.outputHidden) hidden.dispose();
    return { logits: mode === "none" ? null : logits, hidden: options.outputHidden ? hidden : null };
  }

  return model;
}
