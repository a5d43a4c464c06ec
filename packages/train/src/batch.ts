/**
 * Collation: a list of TokenizedExamples -> one right-padded batch with shifted targets, attention mask and, for
 * packed blocks, segment ids and positions that restart per document.
 *
 * Packed blocks (CPT): a token attends only to earlier tokens of its own segment (the model builds the
 * block-diagonal causal mask from `segmentIds`), its position counts from the start of its segment, and the
 * target that would cross into the next document (last token of a document predicting the first token of the
 * next) is ignored, as HF's DataCollatorWithFlattening does. The EOS that ends a document keeps its label: it is
 * predicted from the document's last token, so the model learns to stop.
 */
import { HippoError, IGNORE_INDEX, type TokenizedExample, type TokenizedPreference } from "@hippocrates/core";

export interface LmBatch {
  batchSize: number;
  seqLen: number;
  /** [batch * seq] row-major, right-padded with `padId`. */
  inputIds: Int32Array;
  /** Shifted targets: position t predicts targets[t] (= labels[t + 1]); IGNORE_INDEX where no loss. */
  targets: Int32Array;
  /** 1 for real tokens, 0 for padding; undefined when nothing is padded. */
  attentionMask?: Int32Array;
  /** Present when any example is packed (has segmentIds). Padding gets its own segment. */
  segmentIds?: Int32Array;
  positionIds?: Int32Array;
  /** Real (non-pad) input tokens. */
  numTokens: number;
  /** Positions that take a loss. */
  numTargets: number;
}

export function validateExample(ex: TokenizedExample, row: number): void {
  const n = ex.inputIds.length;
  if (n === 0) throw new HippoError("INVALID_RECORD", "empty example", { row, key: "inputIds" });
  if (ex.labels.length !== n)
    throw new HippoError("INVALID_RECORD", "labels and inputIds differ in length", {
      row,
      key: "labels",
      expected: String(n),
      got: String(ex.labels.length),
    });
  if (ex.segmentIds && ex.segmentIds.length !== n)
    throw new HippoError("INVALID_RECORD", "segmentIds and inputIds differ in length", {
      row,
      key: "segmentIds",
      expected: String(n),
      got: String(ex.segmentIds.length),
    });
  for (let i = 0; i < n; i++) {
    const id = ex.inputIds[i] as number;
    if (!Number.isInteger(id) || id < 0)
      throw new HippoError("INVALID_RECORD", "token id must be a non-negative integer", {
        row,
        key: `inputIds[${i}]`,
        got: String(id),
      });
    const l = ex.labels[i] as number;
    if (!Number.isInteger(l) || (l < 0 && l !== IGNORE_INDEX))
      throw new HippoError("INVALID_RECORD", "bad label", {
        row,
        key: `labels[${i}]`,
        expected: `token id or ${IGNORE_INDEX}`,
        got: String(l),
      });
  }
}

export function collateLm(examples: readonly TokenizedExample[], padId: number, maxLength?: number): LmBatch {
  if (examples.length === 0) throw new HippoError("INVALID_ARGUMENT", "empty batch");
  const T = Math.min(
    maxLength ?? Number.POSITIVE_INFINITY,
    Math.max(...examples.map((e) => e.inputIds.length)),
  );
  const B = examples.length;
  const packed = examples.some((e) => e.segmentIds !== undefined);
  const inputIds = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  const mask = new Int32Array(B * T);
  const segmentIds = packed ? new Int32Array(B * T).fill(-1) : undefined;
  const positionIds = packed ? new Int32Array(B * T) : undefined;
  let padded = false;
  let numTokens = 0;
  let numTargets = 0;
  examples.forEach((ex, b) => {
    const n = Math.min(ex.inputIds.length, T);
    if (n < T) padded = true;
    numTokens += n;
    const seg = (t: number) => ex.segmentIds?.[t] ?? 0;
    let pos = 0;
    for (let t = 0; t < n; t++) {
      const i = b * T + t;
      inputIds[i] = ex.inputIds[t] as number;
      mask[i] = 1;
      if (segmentIds && positionIds) {
        if (t > 0 && seg(t) !== seg(t - 1)) pos = 0;
        segmentIds[i] = seg(t);
        positionIds[i] = pos++;
      }
      if (t + 1 < n && seg(t + 1) === seg(t)) {
        const y = ex.labels[t + 1] as number;
        targets[i] = y;
        if (y !== IGNORE_INDEX) numTargets++;
      }
    }
    if (segmentIds && positionIds) {
      // Padding: a segment of its own so no real token attends to it; positions continue harmlessly.
      for (let t = n; t < T; t++) {
        segmentIds[b * T + t] = -1;
        positionIds[b * T + t] = pos++;
      }
    }
  });
  return {
    batchSize: B,
    seqLen: T,
    inputIds,
    targets,
    attentionMask: padded ? mask : undefined,
    segmentIds,
    positionIds,
    numTokens,
    numTargets,
  };
}

/** Targets that take a loss in an example (labels after the first position), without collating. */
export function countExampleTargets(ex: TokenizedExample): number {
  let n = 0;
  for (let t = 1; t < ex.labels.length; t++) {
    if (ex.labels[t] === IGNORE_INDEX) continue;
    if (ex.segmentIds && ex.segmentIds[t] !== ex.segmentIds[t - 1]) continue;
    n++;
  }
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// Padding-free batches: examples laid end to end in rows (TRL's padding_free, the CPT packing machinery).

/**
 * Rows of packed examples, no padding inside a row (only after the last example of a row, up to the longest
 * row). Each example is its own segment (block-diagonal attention, positions restarting); a segment may have
 * a parent segment whose tokens it also sees (DPO: chosen and rejected after one copy of the prompt). Scored
 * positions are listed explicitly, so one position can predict two tokens (the prompt's last token predicts
 * the first token of both responses).
 */
export interface PackedBatch {
  /** Rows. */
  batchSize: number;
  /** Row length (the longest row). */
  seqLen: number;
  /** [batch * seq], rows right-padded with the pad id after their last example. */
  inputIds: Int32Array;
  /** 1 for real tokens, 0 for the padding at row ends; undefined when no row is padded. */
  attentionMask?: Int32Array;
  segmentIds: Int32Array;
  /** The segment each token's segment branches off (its own when none); undefined when no segment has one. */
  parentSegmentIds?: Int32Array;
  positionIds: Int32Array;
  /** Scored slots (indices into [batch * seq]), the token each predicts, and the unit its log-prob counts for. */
  picks: Int32Array;
  pickTargets: Int32Array;
  pickUnits: Int32Array;
  /** Units: examples (LM) or 2 x pairs (DPO: chosen i is unit i, rejected i is unit pairs + i). */
  units: number;
  /** Real tokens in the rows. */
  numTokens: number;
}

/** One item's tokens before packing: local segment ids 0.., parents, positions, and its scored slots. */
interface Layout {
  ids: number[];
  seg: number[];
  parent: number[];
  pos: number[];
  picks: { slot: number; target: number; unit: number }[];
}

function emptyLayout(): Layout {
  return { ids: [], seg: [], parent: [], pos: [], picks: [] };
}

/** Trailing tokens after the last scored slot influence nothing (attention is causal): drop them. */
function trimLayout(l: Layout): Layout {
  const keep = l.picks.reduce((m, p) => Math.max(m, p.slot + 1), 0);
  return {
    ids: l.ids.slice(0, keep),
    seg: l.seg.slice(0, keep),
    parent: l.parent.slice(0, keep),
    pos: l.pos.slice(0, keep),
    picks: l.picks,
  };
}

/** An LM example (SFT: labels on the response; CPT: a packed block with its own segments) as a layout. */
function exampleLayout(ex: TokenizedExample, unit: number, maxLength: number): Layout {
  const n = Math.min(ex.inputIds.length, maxLength);
  const out = emptyLayout();
  let local = -1;
  let pos = 0;
  for (let t = 0; t < n; t++) {
    if (t === 0 || ex.segmentIds?.[t] !== ex.segmentIds?.[t - 1]) {
      local++;
      pos = 0;
    }
    out.ids.push(ex.inputIds[t] as number);
    out.seg.push(local);
    out.parent.push(local);
    out.pos.push(pos++);
    const sameSegment = ex.segmentIds === undefined || ex.segmentIds[t + 1] === ex.segmentIds[t];
    const y = ex.labels[t + 1];
    if (t + 1 < n && sameSegment && y !== undefined && y !== IGNORE_INDEX)
      out.picks.push({ slot: t, target: y, unit });
  }
  return trimLayout(out);
}

/**
 * A preference pair as one prompt and two responses that each see it: [prompt][chosen][rejected], positions of
 * both responses continuing the prompt's. The same tokens are scored as for prompt + response examples
 * truncated to `maxLength` (right) each, TRL's concatenated forward.
 */
function pairLayout(p: TokenizedPreference, index: number, pairs: number, maxLength: number): Layout {
  const P = p.promptIds.length;
  const out = emptyLayout();
  const responses = [
    { ids: p.chosenIds, unit: index },
    { ids: p.rejectedIds, unit: pairs + index },
  ];
  // Response token j (at index P + j of its example) is scored when 1 <= P + j <= n - 1, n = min(P + R, maxLength).
  const scored = responses.map((r) => Math.max(0, Math.min(P + r.ids.length, maxLength) - Math.max(P, 1)));
  if (scored.every((k) => k === 0)) return out;
  for (let t = 0; t < P; t++) {
    out.ids.push(p.promptIds[t] as number);
    out.seg.push(0);
    out.parent.push(0);
    out.pos.push(t);
  }
  responses.forEach((r, k) => {
    const count = scored[k] as number;
    if (count === 0) return;
    const seg = k + 1;
    const first = Math.max(0, 1 - P); // the first scored response token (response[0] needs a prompt before it)
    const start = out.ids.length;
    // Inputs: response tokens before the last scored one; the token before response[first] is the prompt's
    // last (or, without a prompt, response[0] itself).
    const inputs = first + count - 1;
    for (let j = 0; j < inputs; j++) {
      out.ids.push(r.ids[j] as number);
      out.seg.push(seg);
      out.parent.push(P > 0 ? 0 : seg);
      out.pos.push(P + j);
    }
    for (let j = first; j < first + count; j++) {
      const slot = j === 0 ? P - 1 : start + j - 1;
      out.picks.push({ slot, target: r.ids[j] as number, unit: r.unit });
    }
  });
  return out;
}

/**
 * Lay layouts into rows, first-fit decreasing, each row at most `rowLength` tokens (default: all of them in one
 * row: our Llama attends within each example's block of a row, so a long row costs no more attention than
 * separate rows, and one row has no padding at all).
 */
function packLayouts(layouts: Layout[], units: number, padId: number, rowLength?: number): PackedBatch {
  const longest = Math.max(1, ...layouts.map((l) => l.ids.length));
  const L = Math.max(longest, rowLength ?? layouts.reduce((n, l) => n + l.ids.length, 0));
  const order = layouts
    .map((_, i) => i)
    .sort((a, b) => (layouts[b] as Layout).ids.length - (layouts[a] as Layout).ids.length);
  const rows: { items: number[]; used: number }[] = [];
  for (const i of order) {
    const len = (layouts[i] as Layout).ids.length;
    if (len === 0) continue;
    const row = rows.find((r) => r.used + len <= L);
    if (row) {
      row.items.push(i);
      row.used += len;
    } else rows.push({ items: [i], used: len });
  }
  if (rows.length === 0) rows.push({ items: [], used: 0 });
  const B = rows.length;
  const T = Math.max(1, ...rows.map((r) => r.used));
  const inputIds = new Int32Array(B * T).fill(padId);
  const mask = new Int32Array(B * T);
  const segmentIds = new Int32Array(B * T).fill(-1);
  const parentSegmentIds = new Int32Array(B * T).fill(-1);
  const positionIds = new Int32Array(B * T);
  const picks: number[] = [];
  const pickTargets: number[] = [];
  const pickUnits: number[] = [];
  let hasParents = false;
  let padded = false;
  let numTokens = 0;
  rows.forEach((row, b) => {
    let offset = 0;
    let segBase = 0;
    for (const i of row.items) {
      const l = layouts[i] as Layout;
      for (let t = 0; t < l.ids.length; t++) {
        const k = b * T + offset + t;
        inputIds[k] = l.ids[t] as number;
        mask[k] = 1;
        segmentIds[k] = segBase + (l.seg[t] as number);
        parentSegmentIds[k] = segBase + (l.parent[t] as number);
        if (l.parent[t] !== l.seg[t]) hasParents = true;
        positionIds[k] = l.pos[t] as number;
      }
      for (const p of l.picks) {
        picks.push(b * T + offset + p.slot);
        pickTargets.push(p.target);
        pickUnits.push(p.unit);
      }
      offset += l.ids.length;
      segBase += Math.max(0, ...l.seg) + 1;
    }
    numTokens += offset;
    if (offset < T) padded = true;
  });
  return {
    batchSize: B,
    seqLen: T,
    inputIds,
    attentionMask: padded ? mask : undefined,
    segmentIds,
    parentSegmentIds: hasParents ? parentSegmentIds : undefined,
    positionIds,
    picks: Int32Array.from(picks),
    pickTargets: Int32Array.from(pickTargets),
    pickUnits: Int32Array.from(pickUnits),
    units,
    numTokens,
  };
}

export interface PackOptions {
  /** Truncate longer examples (right), as `collateLm`. */
  maxLength?: number;
  /** Row length; default the sum of the examples' lengths (one row; see packLayouts). */
  rowLength?: number;
}

/** Lay out each item (truncated to options.maxLength) and pack the layouts into rows. */
function packItems<T>(
  items: readonly T[],
  units: number,
  layoutOf: (item: T, index: number, maxLength: number) => Layout,
  padId: number,
  options: PackOptions,
): PackedBatch {
  if (items.length === 0) throw new HippoError("INVALID_ARGUMENT", "empty batch");
  const maxLength = options.maxLength ?? Number.POSITIVE_INFINITY;
  return packLayouts(
    items.map((x, i) => layoutOf(x, i, maxLength)),
    units,
    padId,
    options.rowLength,
  );
}

/** LM examples (SFT, CPT) packed padding-free; unit i = example i. */
export function packExamples(
  examples: readonly TokenizedExample[],
  padId: number,
  options: PackOptions = {},
): PackedBatch {
  return packItems(examples, examples.length, exampleLayout, padId, options);
}

/**
 * Preference pairs packed padding-free, each pair's prompt once with both responses after it (chosen i is
 * unit i, rejected i unit pairs.length + i): the prompt's forward and backward run once per pair.
 */
export function packPreferences(
  pairs: readonly TokenizedPreference[],
  padId: number,
  options: PackOptions = {},
): PackedBatch {
  const layoutOf = (p: TokenizedPreference, i: number, maxLength: number) =>
    pairLayout(p, i, pairs.length, maxLength);
  return packItems(pairs, 2 * pairs.length, layoutOf, padId, options);
}
