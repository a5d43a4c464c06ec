/**
 * Continued pre-training data: corpora -> TextDocuments -> tokens -> packed blocks.
 *
 * Packing (as LLaMA-Factory's pre-training preprocessing, which the authors' Medical-Factory is a fork of):
 * every document is tokenized without special tokens and followed by EOS; the token stream is cut into blocks
 * of `blockSize`. Each block carries `segmentIds` (the document index inside the block) so the trainer builds a
 * block-diagonal causal mask and restarts positions per document; labels equal inputIds, EOS included, so the
 * model learns to stop. A document longer than the room left in a block continues in the next block (standard
 * packing; there it is segment 0 and its positions restart). The tail that does not fill a last block is padded
 * by default (`remainder: "pad"`: pad token inputs, IGNORE_INDEX labels, a segment of its own) so no text is
 * lost on small corpora; `remainder: "drop"` drops it as LLaMA-Factory and HF's `group_texts` do.
 */

import type { TokenizedExample } from "@hippocrates/core";
import {
  createJsonlWriter,
  HippoError,
  IGNORE_INDEX,
  type ProgressReporter,
  type TextDocument,
  type TextTokenizer,
} from "@hippocrates/core";
import { z } from "zod";
import { createNgramIndex, indexTestFiles, type NgramIndex } from "./decontam.js";
import {
  type Manifest,
  type OutputPolicy,
  openDatasetTarget,
  type SourceManifest,
  sourceInputs,
  writeDatasetDir,
} from "./output.js";
import type { RecordFormat, RecordLocation } from "./read.js";
import { normalizeForDedup, sha256File, sha256Hex } from "./text.js";
import { type BadRecordPolicy, type BadRecords, createBadRecords, readValidRecords } from "./validate.js";

// ---------------------------------------------------------------------------------------------------------
// Source formats.

/**
 * - `guidelines`: Meditron's guidelines JSONL; text from `clean_text`, else `text`; id from `id`.
 * - `pmc-patients`: PMC-Patients (CSV or JSON/JSONL) with a `patient` text field; id from `patient_uid`.
 * - `pubmedqa`: PubMedQA `ori_pqal.json` format (object keyed by PMID, `CONTEXTS` array), also the
 *   unlabeled and artificial sets; the text is the contexts joined by newlines.
 * - `text`: any records with a `text` field (and optional `id`).
 */
export type CptSourceKind = "guidelines" | "pmc-patients" | "pubmedqa" | "text";

export interface CptSource {
  kind: CptSourceKind;
  path: string;
  /** Name in the manifest and in each document's `source`; default: the kind. */
  name?: string;
  format?: RecordFormat;
}

const optionalId = z.union([z.string(), z.number()]).optional();

const guidelineSchema = z
  .object({ id: optionalId, text: z.string().optional(), clean_text: z.string().optional() })
  .refine((r) => r.clean_text !== undefined || r.text !== undefined, {
    message: "a guideline needs a string `clean_text` or `text`",
    path: ["text"],
  });

const pmcPatientSchema = z.object({
  patient_uid: optionalId,
  patient_id: optionalId,
  PMID: optionalId,
  patient: z.string(),
});

const pubmedqaContextSchema = z.object({
  QUESTION: z.string().optional(),
  CONTEXTS: z.array(z.string()),
});

const textSchema = z.object({ id: optionalId, text: z.string() });

function idOf(source: string, loc: RecordLocation, id: string | number | undefined): string {
  if (id !== undefined) return `${source}:${id}`;
  if (loc.key !== undefined) return `${source}:${loc.key}`;
  return `${source}:${loc.line !== undefined ? `L${loc.line}` : `R${loc.row ?? 0}`}`;
}

/** Stream the documents of one CPT source (validated; bad records through `bad`). Empty texts are skipped. */
export async function* readCptDocuments(source: CptSource, bad: BadRecords): AsyncGenerator<TextDocument> {
  const name = source.name ?? source.kind;
  const opts = source.format ? { format: source.format } : {};
  // Every case reads the same file with the same policy; only the schema differs.
  const records = <S extends z.ZodType>(schema: S) => readValidRecords(source.path, schema, bad, opts);
  switch (source.kind) {
    case "guidelines":
      for await (const { value, loc } of records(guidelineSchema)) {
        const text = value.clean_text ?? value.text ?? "";
        if (text.trim()) yield { id: idOf(name, loc, value.id), source: name, text };
      }
      return;
    case "pmc-patients":
      for await (const { value, loc } of records(pmcPatientSchema)) {
        if (value.patient.trim())
          yield {
            id: idOf(name, loc, value.patient_uid ?? value.patient_id),
            source: name,
            text: value.patient,
          };
      }
      return;
    case "pubmedqa":
      for await (const { value, loc } of records(pubmedqaContextSchema)) {
        const text = value.CONTEXTS.join("\n");
        if (text.trim()) yield { id: idOf(name, loc, undefined), source: name, text };
      }
      return;
    case "text":
      for await (const { value, loc } of records(textSchema)) {
        if (value.text.trim()) yield { id: idOf(name, loc, value.id), source: name, text: value.text };
      }
      return;
    default:
      throw new HippoError("INVALID_CONFIG", "unknown CPT source kind", {
        key: "kind",
        expected: "guidelines, pmc-patients, pubmedqa or text",
        got: String((source as { kind: unknown }).kind),
      });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Packing.

export type RemainderPolicy = "pad" | "drop";

export interface PackOptions {
  blockSize: number;
  eosTokenId: number;
  /** Input id used for padding (labels are IGNORE_INDEX there); default: the EOS id. */
  padTokenId?: number;
  /** What happens to the last, incomplete block; default "pad". */
  remainder?: RemainderPolicy;
}

export interface Packer {
  /** Add one document's tokens (without EOS; the packer appends it). Returns the blocks it completed. */
  add(tokens: readonly number[]): TokenizedExample[];
  /** Flush the last partial block according to the remainder policy. */
  finish(): TokenizedExample[];
  /** Tokens packed so far (documents + EOS, padding not counted), and tokens dropped by `remainder: "drop"`. */
  stats(): { tokens: number; padded: number; dropped: number; blocks: number };
}

export function createPacker(options: PackOptions): Packer {
  const { blockSize, eosTokenId } = options;
  if (!Number.isInteger(blockSize) || blockSize < 2) {
    throw new HippoError("INVALID_CONFIG", "block size must be an integer >= 2", {
      key: "blockSize",
      got: String(blockSize),
    });
  }
  const pad = options.padTokenId ?? eosTokenId;
  const remainder = options.remainder ?? "pad";
  let ids: number[] = [];
  let segs: number[] = [];
  let seg = -1;
  let tokens = 0;
  let padded = 0;
  let dropped = 0;
  let blocks = 0;

  const emit = (): TokenizedExample => {
    const block = { inputIds: ids, labels: ids.slice(), segmentIds: segs };
    ids = [];
    segs = [];
    seg = -1;
    blocks++;
    return block;
  };

  return {
    add(docTokens) {
      const out: TokenizedExample[] = [];
      const total = docTokens.length + 1;
      let i = 0;
      seg++;
      while (i < total) {
        if (ids.length === blockSize) {
          out.push(emit());
          seg = 0; // the document continues as the first segment of the next block
        }
        const take = Math.min(blockSize - ids.length, total - i);
        for (let k = 0; k < take; k++, i++) {
          ids.push(i < docTokens.length ? (docTokens[i] as number) : eosTokenId);
          segs.push(seg);
        }
      }
      if (ids.length === blockSize) out.push(emit());
      tokens += total;
      return out;
    },
    finish() {
      if (ids.length === 0) return [];
      if (remainder === "drop") {
        dropped += ids.length;
        ids = [];
        segs = [];
        seg = -1;
        return [];
      }
      const n = blockSize - ids.length;
      const padSeg = seg + 1;
      const labels = ids.slice();
      for (let k = 0; k < n; k++) {
        ids.push(pad);
        labels.push(IGNORE_INDEX);
        segs.push(padSeg);
      }
      padded += n;
      const block = { inputIds: ids, labels, segmentIds: segs };
      ids = [];
      segs = [];
      seg = -1;
      blocks++;
      return [block];
    },
    stats: () => ({ tokens, padded, dropped, blocks }),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Tokenization helpers.

/** A tokenizer that may also encode many texts at once (`@hippocrates/tokenizer`'s HfTokenizer does). */
export type MaybeBatchTokenizer = TextTokenizer & {
  encodeBatch?(texts: string[], options?: { addSpecialTokens?: boolean }): Promise<number[][]>;
};

export async function encodeMany(tokenizer: MaybeBatchTokenizer, texts: string[]): Promise<number[][]> {
  if (tokenizer.encodeBatch) return tokenizer.encodeBatch(texts, { addSpecialTokens: false });
  const out: number[][] = [];
  for (const t of texts) out.push(await tokenizer.encode(t, { addSpecialTokens: false }));
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Builder.

export interface BuildCptOptions extends OutputPolicy {
  sources: CptSource[];
  outDir: string;
  tokenizer: MaybeBatchTokenizer;
  /** Tokens per block; the authors' code base defaults to 1024. */
  blockSize?: number;
  remainder?: RemainderPolicy;
  /** Drop exact duplicates (after normalisation: NFKC, lower case, collapsed whitespace); default true. */
  dedup?: boolean;
  /** Drop documents that share an n-gram with these evaluation texts (see decontam.ts). */
  decontaminate?: { index: NgramIndex } | { texts: string[]; n?: number };
  /** Or: evaluation test files to build that index from (see readTestTexts), with `ngram` (default 13). */
  decontaminateAgainst?: string[];
  ngram?: number;
  onBadRecord?: BadRecordPolicy;
  /** Also write documents.jsonl (the deduplicated TextDocuments); default false. */
  writeDocuments?: boolean;
  /** Recorded in the manifest; CPT keeps document order, so the output does not depend on it. */
  seed?: number;
  /** Documents tokenized per batch. */
  batchSize?: number;
  signal?: AbortSignal;
}

export interface BuildCptSummary {
  outDir: string;
  documents: number;
  duplicates: number;
  contaminated: number;
  skippedRecords: number;
  blocks: number;
  tokens: number;
  paddedTokens: number;
  droppedTokens: number;
  manifest: Manifest;
}

export async function buildCptDataset(
  options: BuildCptOptions,
  progress: ProgressReporter,
): Promise<BuildCptSummary> {
  const target = await openDatasetTarget("cpt", options.outDir, sourceInputs(options), options);
  const blockSize = options.blockSize ?? 1024;
  const eos = options.tokenizer.eosTokenId;
  if (eos === null)
    throw new HippoError("INVALID_ARGUMENT", "the tokenizer has no EOS token; packing needs one");
  const bad = createBadRecords(options.onBadRecord ?? "fail");
  const dedup = options.dedup ?? true;
  let index: NgramIndex | undefined;
  if (options.decontaminate !== undefined) {
    index =
      "index" in options.decontaminate
        ? options.decontaminate.index
        : createNgramIndex(options.decontaminate.texts, options.decontaminate.n);
  } else if (options.decontaminateAgainst && options.decontaminateAgainst.length > 0) {
    index = (await indexTestFiles(options.decontaminateAgainst, options.ngram)).index;
  }
  const batchSize = options.batchSize ?? 64;
  const config = {
    sources: options.sources.map((s) => ({ ...s })),
    blockSize,
    remainder: options.remainder ?? "pad",
    dedup,
    decontaminationN: index?.n ?? null,
    decontaminateAgainst: options.decontaminateAgainst ?? [],
    eosTokenId: eos,
    padTokenId: options.tokenizer.padTokenId ?? eos,
  };

  let summary: Omit<BuildCptSummary, "manifest" | "outDir"> | undefined;
  const manifest = await writeDatasetDir(target, async (tmp) => {
    const seen = new Set<string>();
    const packer = createPacker({
      blockSize,
      eosTokenId: eos,
      padTokenId: config.padTokenId,
      remainder: config.remainder,
    });
    const blocksOut = await createJsonlWriter(`${tmp}/blocks.jsonl`);
    const docsOut = options.writeDocuments ? await createJsonlWriter(`${tmp}/documents.jsonl`) : undefined;
    const task = progress.start({ name: "cpt", unit: "doc" });
    const sources: SourceManifest[] = [];
    let documents = 0;
    let duplicates = 0;
    let contaminated = 0;
    try {
      for (const source of options.sources) {
        const name = source.name ?? source.kind;
        const { sha256, bytes } = await sha256File(source.path);
        let records = 0;
        let kept = 0;
        let srcDup = 0;
        let srcContam = 0;
        let batch: TextDocument[] = [];
        const flush = async () => {
          if (batch.length === 0) return;
          const encoded = await encodeMany(
            options.tokenizer,
            batch.map((d) => d.text),
          );
          for (let k = 0; k < batch.length; k++) {
            for (const block of packer.add(encoded[k] as number[])) await blocksOut.write(block);
            if (docsOut) await docsOut.write(batch[k]);
          }
          task.tick(batch.length);
          batch = [];
        };
        for await (const doc of readCptDocuments(source, bad)) {
          if (options.signal?.aborted) throw new HippoError("ABORTED", "CPT build aborted");
          records++;
          if (dedup) {
            const h = sha256Hex(normalizeForDedup(doc.text));
            if (seen.has(h)) {
              srcDup++;
              continue;
            }
            seen.add(h);
          }
          if (index?.matches(doc.text)) {
            srcContam++;
            continue;
          }
          kept++;
          batch.push(doc);
          if (batch.length >= batchSize) await flush();
        }
        await flush();
        documents += kept;
        duplicates += srcDup;
        contaminated += srcContam;
        sources.push({
          name,
          kind: source.kind,
          path: source.path,
          sha256,
          bytes,
          records,
          kept,
          duplicates: srcDup,
          contaminated: srcContam,
        });
      }
      for (const block of packer.finish()) await blocksOut.write(block);
    } catch (e) {
      await blocksOut.discard();
      await docsOut?.discard();
      throw e;
    } finally {
      task.done();
    }
    const blocksInfo = await blocksOut.close();
    const outputs: Manifest["outputs"] = { "blocks.jsonl": blocksInfo };
    if (docsOut) outputs["documents.jsonl"] = await docsOut.close();
    const stats = packer.stats();
    summary = {
      documents,
      duplicates,
      contaminated,
      skippedRecords: bad.total(),
      blocks: stats.blocks,
      tokens: stats.tokens,
      paddedTokens: stats.padded,
      droppedTokens: stats.dropped,
    };
    return {
      builder: "cpt",
      formatVersion: 1,
      seed: options.seed ?? 0,
      config,
      sources,
      counts: { ...summary },
      badRecords: bad.report(),
      outputs,
    };
  });
  if (!summary) throw new HippoError("INTERNAL", "CPT build produced no summary");
  return { outDir: options.outDir, ...summary, manifest };
}
