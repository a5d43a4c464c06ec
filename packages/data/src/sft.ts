/**
 * The SFT dataset builder: instruction sources -> decontaminated against the evaluation test sets -> a
 * weighted, seeded mixture -> instructions.jsonl (+ tokenized.jsonl when a tokenizer is given) + manifest.
 */
import type { InstructionRecord, ProgressReporter, TextTokenizer } from "@hippocrates/core";
import { createJsonlWriter, createRng, HippoError, type Rng } from "@hippocrates/core";
import {
  type DecontaminationReport,
  decontaminateInstructions,
  emptyDecontaminationReport,
  indexTestFiles,
  type NgramIndex,
} from "./decontam.js";
import { type InstructionSource, readInstructions } from "./instructions.js";
import {
  type Manifest,
  type OutputPolicy,
  openDatasetTarget,
  type SourceManifest,
  sourceInputs,
  writeDatasetDir,
} from "./output.js";
import { type SftTokenizeOptions, tokenizeInstruction } from "./sft-tokenize.js";
import { sha256File } from "./text.js";
import { type BadRecordPolicy, createBadRecords } from "./validate.js";

export interface MixtureSource extends InstructionSource {
  /**
   * How many records to take: a number (sampled without replacement; above the source's size the whole source
   * is repeated and the rest sampled), or "all" (default). `weight` with the mixture's `total` instead gives
   * a share of the total.
   */
  count?: number | "all";
  weight?: number;
}

export interface BuildSftOptions extends OutputPolicy {
  sources: MixtureSource[];
  outDir: string;
  seed?: number;
  /** With weights: the total number of records of the mixture. */
  total?: number;
  /** Evaluation test files whose n-grams exclude training items (see readTestTexts for the formats). */
  decontaminateAgainst?: string[];
  /** A prebuilt index instead of files. */
  decontaminationIndex?: NgramIndex;
  ngram?: number;
  onBadRecord?: BadRecordPolicy;
  /** When given, tokenized.jsonl is written too (TokenizedExample per record, same order). */
  tokenizer?: TextTokenizer;
  tokenize?: SftTokenizeOptions;
  signal?: AbortSignal;
}

export interface BuildSftSummary {
  outDir: string;
  records: number;
  perSource: Record<string, { read: number; afterDecontamination: number; taken: number }>;
  decontamination: DecontaminationReport;
  skippedRecords: number;
  tokenized?: { examples: number; tokens: number; labelledTokens: number; droppedEmpty: number };
  manifest: Manifest;
}

/** Draw `count` of `items` with a seeded RNG: without replacement, repeating the whole set above its size. */
export function sampleCount<T>(items: readonly T[], count: number, rng: Rng): T[] {
  if (!Number.isInteger(count) || count < 0)
    throw new HippoError("INVALID_CONFIG", "count must be a non-negative integer", {
      key: "count",
      got: String(count),
    });
  if (items.length === 0) return [];
  const out: T[] = [];
  const whole = Math.floor(count / items.length);
  for (let k = 0; k < whole; k++) out.push(...items);
  const rest = count - whole * items.length;
  if (rest > 0) out.push(...rng.shuffle(items.slice()).slice(0, rest));
  return out;
}

/** The number of records to take from each source. */
export function resolveCounts(
  sources: readonly MixtureSource[],
  sizes: readonly number[],
  total?: number,
): number[] {
  const weighted = sources.some((s) => s.weight !== undefined);
  if (weighted) {
    if (total === undefined)
      throw new HippoError("INVALID_CONFIG", "weights need the mixture's total", { key: "total" });
    const sum = sources.reduce((a, s) => a + (s.weight ?? 0), 0);
    if (!(sum > 0))
      throw new HippoError("INVALID_CONFIG", "weights must sum to a positive number", { key: "weight" });
    // Largest remainder rounding so the counts add up to total exactly.
    const exact = sources.map((s) => ((s.weight ?? 0) / sum) * total);
    const counts = exact.map(Math.floor);
    let left = total - counts.reduce((a, b) => a + b, 0);
    const order = exact
      .map((e, i) => [e - Math.floor(e), i] as const)
      .sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (const [, i] of order) {
      if (left-- <= 0) break;
      counts[i] = (counts[i] as number) + 1;
    }
    return counts;
  }
  return sources.map((s, i) => (s.count === undefined || s.count === "all" ? (sizes[i] as number) : s.count));
}

export async function buildSftDataset(
  options: BuildSftOptions,
  progress: ProgressReporter,
): Promise<BuildSftSummary> {
  const target = await openDatasetTarget("sft", options.outDir, sourceInputs(options), options);
  const seed = options.seed ?? 42;
  const bad = createBadRecords(options.onBadRecord ?? "fail");
  const n = options.ngram ?? 13;
  let index = options.decontaminationIndex;
  const testFiles: Array<{ path: string; sha256: string; bytes: number; items: number }> = [];
  if (!index && options.decontaminateAgainst && options.decontaminateAgainst.length > 0) {
    const built = await indexTestFiles(options.decontaminateAgainst, n);
    index = built.index;
    for (const [i, path] of options.decontaminateAgainst.entries())
      testFiles.push({ path, ...(await sha256File(path)), items: built.items[i] as number });
  }
  const report = emptyDecontaminationReport(index?.n ?? n);
  const rng = createRng(seed);

  // Read and decontaminate every source (sources are read whole: the mixture samples from them).
  const loaded: InstructionRecord[][] = [];
  const sourcesManifest: SourceManifest[] = [];
  const perSource: BuildSftSummary["perSource"] = {};
  const readTask = progress.start({ name: "sft:read", unit: "rec" });
  try {
    for (const source of options.sources) {
      const name = source.name ?? source.format;
      const records: InstructionRecord[] = [];
      for await (const r of readInstructions(source, bad)) {
        if (options.signal?.aborted) throw new HippoError("ABORTED", "SFT build aborted");
        records.push(r);
        readTask.tick();
      }
      const kept = index ? decontaminateInstructions(records, index, report) : records;
      loaded.push(kept);
      perSource[name] = { read: records.length, afterDecontamination: kept.length, taken: 0 };
      const { sha256, bytes } = await sha256File(source.path);
      sourcesManifest.push({
        name,
        kind: source.format,
        path: source.path,
        sha256,
        bytes,
        records: records.length,
        kept: 0,
        dropped: records.length - kept.length,
      });
    }
  } finally {
    readTask.done();
  }

  const counts = resolveCounts(
    options.sources,
    loaded.map((l) => l.length),
    options.total,
  );
  const mixture: InstructionRecord[] = [];
  for (let i = 0; i < loaded.length; i++) {
    // One forked stream per source, so adding a source does not change what the others draw.
    const taken = sampleCount(loaded[i] as InstructionRecord[], counts[i] as number, rng.fork());
    mixture.push(...taken);
    const m = sourcesManifest[i] as SourceManifest;
    m.kept = taken.length;
    (perSource[m.name] as { taken: number }).taken = taken.length;
  }
  rng.shuffle(mixture);

  let tokenized: BuildSftSummary["tokenized"];
  const manifest = await writeDatasetDir(target, async (tmp) => {
    const out = await createJsonlWriter(`${tmp}/instructions.jsonl`);
    const tokOut = options.tokenizer ? await createJsonlWriter(`${tmp}/tokenized.jsonl`) : undefined;
    const task = progress.start({ name: "sft:write", unit: "rec", total: mixture.length });
    const tok = { examples: 0, tokens: 0, labelledTokens: 0, droppedEmpty: 0 };
    try {
      for (const r of mixture) {
        if (options.signal?.aborted) throw new HippoError("ABORTED", "SFT build aborted");
        await out.write(r);
        if (tokOut && options.tokenizer) {
          const ex = await tokenizeInstruction(r, options.tokenizer, options.tokenize);
          if (!ex) tok.droppedEmpty++;
          else {
            await tokOut.write({ id: r.id, ...ex });
            tok.examples++;
            tok.tokens += ex.inputIds.length;
            tok.labelledTokens += ex.labels.filter((l) => l >= 0).length;
          }
        }
        task.tick();
      }
    } catch (e) {
      await out.discard();
      await tokOut?.discard();
      throw e;
    } finally {
      task.done();
    }
    const outputs: Manifest["outputs"] = { "instructions.jsonl": await out.close() };
    if (tokOut) {
      outputs["tokenized.jsonl"] = await tokOut.close();
      tokenized = tok;
    }
    return {
      builder: "sft",
      formatVersion: 1,
      seed,
      config: {
        sources: options.sources.map((s) => ({ ...s })),
        total: options.total ?? null,
        ngram: report.n,
        decontaminateAgainst: testFiles,
        tokenize: options.tokenizer
          ? { template: options.tokenize?.template ?? "default", ...options.tokenize }
          : null,
      },
      sources: sourcesManifest,
      counts: { records: mixture.length, skippedRecords: bad.total(), ...(tokenized ?? {}) },
      decontamination: report,
      badRecords: bad.report(),
      outputs,
    };
  });
  return {
    outDir: options.outDir,
    records: mixture.length,
    perSource,
    decontamination: report,
    skippedRecords: bad.total(),
    tokenized,
    manifest,
  };
}
