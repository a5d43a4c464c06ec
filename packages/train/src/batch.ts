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
import { HippoError, IGNORE_INDEX, type TokenizedExample } from "@hippocrates/core";

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
