/**
 * Masks and positions of one forward step, computed in JavaScript before any tensor work: which cached and new
 * slots each token may attend to (causal, padding, packed segments, sliding window), each token's position id,
 * and the RoPE tables for those positions. The cache's bookkeeping (validity and segment of every slot) is
 * updated here too, so that the next step sees this one's tokens.
 *
 * Rules (transformers' semantics):
 * - causal: a query at cache index i sees keys j <= i;
 * - padding: keys that are padding (attentionMask 0) are never seen;
 * - packed segments: a query sees keys of its own segment only (block-diagonal), and of its parent segment
 *   when `parentSegmentIds` names one (responses branching off a shared prompt, continuations off a shared
 *   context); with `prefixVisible` every new token also sees every cached slot;
 * - sliding window (Mistral): j > i - window, as `sliding_window_overlay`;
 * - positions: explicit `positionIds`, else the number of earlier real tokens of the same segment and its parent
 *   (HF generate's `cumsum(attention_mask) - 1`, restarting per segment); padded slots get 1, as HF fills them.
 */
import type { Rng } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import type { KVCache } from "./cache.js";
import { type Dims, ropeTables } from "./config.js";

/** The additive value of a masked score: exp(-1e9 - max) is exactly 0 in float32. */
export const MASKED = -1e9;

/** What a step takes from the forward's options. */
export interface StepInputs {
  attentionMask?: number[][] | undefined;
  positionIds?: number[][] | undefined;
  segmentIds?: number[][] | undefined;
  parentSegmentIds?: number[][] | undefined;
  prefixVisible?: boolean | undefined;
}

/** The JavaScript part of a step: positions and masks, no tensors yet. */
export interface StepPlan {
  batch: number;
  T: number;
  /** Cached slots before this step. */
  past: number;
  /** Slots attended to: past + T. */
  S: number;
  /** [B * T, headDim] RoPE tables for each token's position. */
  cos: Float32Array;
  sin: Float32Array;
  /**
   * Additive masks [T * S], one per row, or a single one when every row's mask is the same. With `blocks`:
   * the masks of the tiles instead, in the order the blocks list them.
   */
  masks: Float32Array[];
  /**
   * In a step with no cached slots, packed rows' attention blocks and long blocks' causal tiles, per row
   * (`blockMasks`); else undefined.
   */
  blocks: AttentionBlock[][] | undefined;
}

/**
 * A tile of a row's attention: queries [start, end) attend only to keys [keyStart, keyEnd); `mask` indexes its
 * [end - start, keyEnd - keyStart] mask. A block (below) is one tile, or several that split its queries with
 * the same keyStart (the block's start) and growing keyEnd (causal tiles).
 */
export interface AttentionBlock {
  start: number;
  end: number;
  keyStart: number;
  keyEnd: number;
  mask: number;
}

/**
 * Query rows per causal tile: a block of at least twice this many queries is split into tiles of this many, each
 * attending only to the keys up to its last query's (rounded up to TILE_KEY_ALIGNMENT), so the masked upper
 * triangle is mostly not computed (flash-attention's causal kernels skip masked tiles the same way). With n tiles
 * a block's scores cost about (n + 1) / 2n of l^2. Measured on wasm (2 threads, SmolLM-135M shape, 6 layers, one
 * row): at 2,048 tokens a forward takes 2.6-2.7 s with tiles of 256 against 3.1-3.3 s untiled; at 1,024 about 5%
 * less; tiles of 64 made 0-shot MedQA scoring (rows of ~250) ~5% slower (small products run at half the GEMM
 * rate, and each tile adds ~8 ops per KV head and layer), so rows under 512 stay untiled.
 */
export const TILE_ROWS = 256;

/**
 * A tile's key count is a multiple of this: a softmax over keys cut at a multiple of 4 is the same bits as over
 * the whole row with the rest masked (engine.ts, item 5), so tiling changes no result (16 as PREFIX_ALIGNMENT).
 */
const TILE_KEY_ALIGNMENT = 16;

/**
 * Plan a step of `T` new tokens for `B` rows on top of `cache` (if any), and record the new slots' validity and
 * segments in the cache.
 */
export function planStep(
  B: number,
  T: number,
  inputs: StepInputs,
  cache: KVCache | undefined,
  dims: Dims,
  invFreq: Float32Array,
): StepPlan {
  const past = cache?.length ?? 0;
  const S = past + T;
  const positions = new Int32Array(B * T);
  const masks: Float32Array[] = [];
  let shared = true;
  const prefixVisible = inputs.prefixVisible === true && cache !== undefined;
  for (let b = 0; b < B; b++) {
    const valid = new Uint8Array(S);
    const seg = new Int32Array(S);
    if (cache !== undefined) {
      valid.set(cache.valid[b] as Uint8Array);
      seg.set(cache.segments[b] as Int32Array);
    }
    const maskRow = inputs.attentionMask?.[b];
    const segRow = inputs.segmentIds?.[b];
    for (let t = 0; t < T; t++) {
      valid[past + t] = maskRow === undefined || maskRow[t] ? 1 : 0;
      seg[past + t] = segRow === undefined ? 0 : (segRow[t] as number);
    }
    // The segment each new token may also see (its own when it has no parent).
    const parentRow = inputs.parentSegmentIds?.[b];
    const parent = new Int32Array(T);
    for (let t = 0; t < T; t++)
      parent[t] = parentRow === undefined ? (seg[past + t] as number) : (parentRow[t] as number);
    const posRow = inputs.positionIds?.[b];
    for (let t = 0; t < T; t++) {
      const i = past + t;
      if (posRow !== undefined) positions[b * T + t] = posRow[t] as number;
      else if (!valid[i]) {
        positions[b * T + t] = 1; // HF fills padded positions with 1; never used
      } else {
        let n = 0;
        for (let j = 0; j < i; j++) if (valid[j] && (seg[j] === seg[i] || seg[j] === parent[t])) n++;
        positions[b * T + t] = n;
      }
    }
    const mask = new Float32Array(T * S);
    const window = dims.slidingWindow;
    for (let t = 0; t < T; t++) {
      const i = past + t;
      for (let j = 0; j < S; j++) {
        const sameSegment = seg[j] === seg[i] || seg[j] === parent[t] || (prefixVisible && j < past);
        const ok = j <= i && valid[j] === 1 && sameSegment && (window === null || j > i - window);
        mask[t * S + j] = ok ? 0 : MASKED;
      }
    }
    if (b > 0 && shared) shared = sameValues(mask, masks[0] as Float32Array);
    masks.push(mask);
    if (cache !== undefined) {
      cache.valid[b] = valid;
      cache.segments[b] = seg;
    }
  }
  if (cache !== undefined) cache.length = S;
  const { cos, sin } = ropeTables(invFreq, positions);
  const rowMasks = shared ? masks.slice(0, 1) : masks;
  const blocked = past === 0 ? blockMasks(rowMasks, B, T) : undefined;
  return { batch: B, T, past, S, cos, sin, masks: blocked?.masks ?? rowMasks, blocks: blocked?.blocks };
}

/**
 * Attention blocks of packed rows: a row splits at t when no query at or after t sees a key before t. Attention
 * within each block over the block's own keys is the row's attention: the keys left out are masked for every
 * query of the block (before the block: by the split; after it: by causality), and a masked score's exp is
 * exactly 0. Packed rows then cost sum(l_i^2) in attention, as flash-attention's varlen kernels (TRL's
 * `padding_free`), instead of T^2. A query that sees nothing (padding) constrains no split and joins the block
 * before it (its output is never read: no real query sees a padded key). Long blocks are split further into
 * causal tiles (`TILE_ROWS`).
 *
 * Undefined when no row has two tiles (nothing to save) or without a cache-free step (the cache's slots are
 * not split).
 */
function blockMasks(
  rowMasks: Float32Array[],
  B: number,
  T: number,
): { masks: Float32Array[]; blocks: AttentionBlock[][] } | undefined {
  const tiles = rowMasks.map((m) =>
    blockSpans(m, T).flatMap(([start, end]) => causalTiles(m, T, start, end)),
  );
  if (tiles.every((r) => r.length < 2)) return undefined;
  const masks: Float32Array[] = [];
  const perMask = tiles.map((row, r) =>
    row.map(([start, end, keyStart, keyEnd]) => {
      const [l, kl] = [end - start, keyEnd - keyStart];
      const m = new Float32Array(l * kl);
      const full = rowMasks[r] as Float32Array;
      for (let i = 0; i < l; i++)
        m.set(full.subarray((start + i) * T + keyStart, (start + i) * T + keyEnd), i * kl);
      masks.push(m);
      return { start, end, keyStart, keyEnd, mask: masks.length - 1 };
    }),
  );
  return { masks, blocks: Array.from({ length: B }, (_, b) => perMask[rowMasks.length === 1 ? 0 : b] ?? []) };
}

/**
 * The tiles [start, end, keyStart, keyEnd] of the block [s, e) of a row's [T, T] mask: the block itself when it
 * is shorter than 2 * TILE_ROWS, else TILE_ROWS queries each, with keys from s up to the last key any of them
 * sees, rounded up to TILE_KEY_ALIGNMENT (the keys after it are masked for all of them).
 */
function causalTiles(
  mask: Float32Array,
  T: number,
  s: number,
  e: number,
): [number, number, number, number][] {
  if (e - s < 2 * TILE_ROWS) return [[s, e, s, e]];
  const out: [number, number, number, number][] = [];
  for (let a = s; a < e; a += TILE_ROWS) {
    const b = Math.min(e, a + TILE_ROWS);
    let last = s; // at least one key, also for queries that see none (padding: never read)
    for (let q = a; q < b; q++)
      for (let j = e - 1; j > last; j--)
        if (mask[q * T + j] === 0) {
          last = j;
          break;
        }
    const keys = Math.ceil((last + 1 - s) / TILE_KEY_ALIGNMENT) * TILE_KEY_ALIGNMENT;
    out.push([a, b, s, Math.min(e, s + keys)]);
  }
  return out;
}

/** The [start, end) spans of one row's [T, T] mask (see blockMasks). */
function blockSpans(mask: Float32Array, T: number): [number, number][] {
  // first[q]: the first key query q sees (T when it sees none).
  const first = new Int32Array(T).fill(T);
  for (let q = 0; q < T; q++) {
    for (let j = 0; j <= q; j++) {
      if (mask[q * T + j] === 0) {
        first[q] = j;
        break;
      }
    }
  }
  const starts: number[] = [0];
  let suffixMin = T;
  const splits = new Uint8Array(T);
  for (let t = T - 1; t > 0; t--) {
    suffixMin = Math.min(suffixMin, first[t] as number);
    // Split before t when nothing from t on looks back past t, and t starts something (a real query).
    if (suffixMin >= t && first[t] === t) splits[t] = 1;
  }
  for (let t = 1; t < T; t++) if (splits[t]) starts.push(t);
  return starts.map((s, i) => [s, starts[i + 1] ?? T]);
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return false;
  return true;
}

/** One step's tensors and settings, as the decoder layers read them. */
export interface Step {
  batch: number;
  T: number;
  past: number;
  /** [B*T, 1, d] cos/sin for each token's position. */
  cos: tf.Tensor3D;
  sin: tf.Tensor3D;
  /** Additive masks [T, past + T], one per row or one shared; with `blocks`, the blocks' [l, l] masks. */
  masks: tf.Tensor2D[];
  /** Per row, the attention blocks of packed rows (StepPlan.blocks). */
  blocks: AttentionBlock[][] | undefined;
  training: boolean;
  rng: Rng;
  trace: ((name: string, t: tf.Tensor) => void) | undefined;
  /**
   * Gradient checkpointing: the first pass records each linear module's base product x W in call order; the
   * recomputation replays them (linearWithValue) instead of multiplying again.
   */
  products?: { mode: "record" | "replay"; outputs: tf.Tensor2D[]; next: number };
}

/** Mask i's shape: [T, S] for a row, [queries, keys] for an attention tile. */
function maskShape(plan: StepPlan, i: number): [number, number] {
  const block = plan.blocks?.flat().find((b) => b.mask === i);
  return block === undefined ? [plan.T, plan.S] : [block.end - block.start, block.keyEnd - block.keyStart];
}

/** The plan's tensors (created in the caller's scope). */
export function stepTensors(
  plan: StepPlan,
  headDim: number,
  settings: { training: boolean; rng: Rng; trace: Step["trace"] },
): Step {
  const { batch: B, T } = plan;
  return {
    batch: B,
    T,
    past: plan.past,
    cos: tf.tensor3d(plan.cos, [B * T, 1, headDim]),
    sin: tf.tensor3d(plan.sin, [B * T, 1, headDim]),
    masks: plan.masks.map((m, i) => tf.tensor2d(m, maskShape(plan, i))),
    blocks: plan.blocks,
    ...settings,
  };
}
