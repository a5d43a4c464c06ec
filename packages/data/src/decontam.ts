/**
 * Decontamination: a training item is dropped when it shares a word n-gram (n = 13 by default, as GPT-3 and
 * Meditron) with any evaluation test item. Words come from `ngramWords` (lower case, punctuation removed).
 * A test item shorter than n words is indexed whole, and matches a training item containing that exact word
 * sequence (GPT-3 did the same for short items, otherwise they could never be detected).
 */
import type { InstructionRecord, MultipleChoiceItem } from "@hippocrates/core";
import { HippoError, isPlainObject, readJsonFile } from "@hippocrates/core";
import { readRawRecords } from "./read.js";
import { ngrams, ngramWords } from "./text.js";

export interface NgramIndex {
  readonly n: number;
  /** Number of distinct n-grams (plus short items) indexed. */
  readonly size: number;
  /** True when `text` shares an n-gram with an indexed test text. */
  matches(text: string): boolean;
  /** The first shared n-gram, or undefined. */
  firstMatch(text: string): string | undefined;
}

export function createNgramIndex(testTexts: Iterable<string>, n = 13): NgramIndex {
  if (!Number.isInteger(n) || n < 1)
    throw new HippoError("INVALID_CONFIG", "n-gram size must be a positive integer", {
      key: "n",
      got: String(n),
    });
  const grams = new Set<string>();
  // Short test items, by length in words.
  const short = new Map<number, Set<string>>();
  for (const text of testTexts) {
    const words = ngramWords(text);
    if (words.length === 0) continue;
    if (words.length < n) {
      let set = short.get(words.length);
      if (!set) {
        set = new Set();
        short.set(words.length, set);
      }
      set.add(words.join(" "));
      continue;
    }
    for (const g of ngrams(words, n)) grams.add(g);
  }
  const shortLengths = [...short.keys()].sort((a, b) => a - b);
  let shortCount = 0;
  for (const s of short.values()) shortCount += s.size;
  const firstMatch = (text: string): string | undefined => {
    const words = ngramWords(text);
    for (const g of ngrams(words, n)) if (grams.has(g)) return g;
    for (const len of shortLengths) {
      const set = short.get(len) as Set<string>;
      for (const g of ngrams(words, len)) if (set.has(g)) return g;
    }
    return undefined;
  };
  return { n, size: grams.size + shortCount, matches: (t) => firstMatch(t) !== undefined, firstMatch };
}

/** The text of a multiple-choice test item as it appears to a model: question and options. */
export function multipleChoiceText(item: MultipleChoiceItem): string {
  return `${item.question}\n${item.options.join("\n")}`;
}

/**
 * The text of an instruction record for overlap checks: user and assistant contents joined, without system
 * messages and without the labels the evaluation-instruction templates add ("Question:", "Options:",
 * "Context:", "Abstract:", "Answer:"). Otherwise a template word between a short question and short options
 * breaks every n-gram that spans them, and a copied test item goes unnoticed.
 */
export function instructionText(record: InstructionRecord): string {
  return record.messages
    .filter((m) => m.role !== "system")
    .map((m) =>
      m.content
        .replace(/^(Question|Context|Abstract): /gmu, "")
        .replace(/^Options:$/gmu, "")
        .replace(/\n?Answer:$/u, ""),
    )
    .join("\n");
}

/**
 * Texts of an evaluation test file for the index, read from any of the benchmark formats at hand:
 * MedQA JSONL (`question`, `options` object), MedMCQA (`question` + `opa..opd` or `choices`), PubMedQA
 * `ori_pqal.json` (`QUESTION`, `CONTEXTS`) or its flattened JSONL (`question`), MMLU-style CSV
 * (`question`, `choice0..`), or any record with a `question` or `text` string. Every string value of the
 * record that is a question, option or context goes in.
 */
export async function readTestTexts(path: string): Promise<string[]> {
  const texts: string[] = [];
  if (path.toLowerCase().endsWith(".json")) {
    // ori_pqal.json and test_ground_truth-like objects: only records with text are used.
    const doc = await readJsonFile(path);
    const values = Array.isArray(doc) ? doc : isPlainObject(doc) ? Object.values(doc) : [];
    for (const v of values) {
      const t = recordText(v);
      if (t) texts.push(t);
    }
    return texts;
  }
  for await (const { value } of readRawRecords(path)) {
    const t = recordText(value);
    if (t) texts.push(t);
  }
  return texts;
}

/** The n-gram index of evaluation test files (see readTestTexts), and how many texts each file gave. */
export async function indexTestFiles(
  paths: readonly string[],
  n?: number,
): Promise<{ index: NgramIndex; items: number[] }> {
  const texts: string[] = [];
  const items: number[] = [];
  for (const path of paths) {
    const t = await readTestTexts(path);
    items.push(t.length);
    texts.push(...t);
  }
  return { index: createNgramIndex(texts, n), items };
}

const LETTERS = "ABCDEFGHIJ";

/**
 * Options are written lettered ("A. text"), the way both the harness ("(A) text") and Meditron-style prompts
 * ("A. text") show them: after punctuation removal both read "a text", so n-grams that run across options
 * match either rendering.
 */
function lettered(options: unknown[]): string[] {
  return options.flatMap((o, i) =>
    typeof o !== "string" ? [] : /^\(?[A-J][.)]\s/u.test(o) ? [o] : [`${LETTERS[i]}. ${o}`],
  );
}

function recordText(v: unknown): string | undefined {
  if (!isPlainObject(v)) return undefined;
  const parts: string[] = [];
  const push = (x: unknown) => {
    if (typeof x === "string" && x.trim()) parts.push(x);
    else if (Array.isArray(x)) for (const y of x) push(y);
  };
  push(v.question ?? v.QUESTION ?? v.text);
  push(v.CONTEXTS ?? v.contexts ?? v.context);
  const opts = v.options ?? v.choices;
  if (isPlainObject(opts)) for (const [k, o] of Object.entries(opts)) push(`${k}. ${String(o)}`);
  else if (Array.isArray(opts)) push(lettered(opts));
  else if (typeof opts === "string" && opts.trim()) push(opts);
  push(lettered(["opa", "opb", "opc", "opd", "ope"].map((k) => v[k]).filter((o) => o !== undefined)));
  push(lettered(Array.from({ length: 10 }, (_, i) => v[`choice${i}`]).filter((o) => o !== undefined)));
  return parts.length > 0 ? parts.join("\n") : undefined;
}

export interface DecontaminationReport {
  n: number;
  /** Items dropped per source name. */
  dropped: Record<string, number>;
  /** Items kept per source name. */
  kept: Record<string, number>;
  /** A few examples: item id and the shared n-gram. */
  examples: Array<{ id: string; source: string; ngram: string }>;
}

/** Split instruction records into kept and dropped by overlap with the index. */
export function decontaminateInstructions(
  records: readonly InstructionRecord[],
  index: NgramIndex,
  report: DecontaminationReport,
  keepExamples = 10,
): InstructionRecord[] {
  const kept: InstructionRecord[] = [];
  for (const r of records) {
    const hit = index.firstMatch(instructionText(r));
    if (hit === undefined) {
      kept.push(r);
      report.kept[r.source] = (report.kept[r.source] ?? 0) + 1;
    } else {
      report.dropped[r.source] = (report.dropped[r.source] ?? 0) + 1;
      if (report.examples.length < keepExamples)
        report.examples.push({ id: r.id, source: r.source, ngram: hit });
    }
  }
  return kept;
}

export function emptyDecontaminationReport(n: number): DecontaminationReport {
  return { n, dropped: {}, kept: {}, examples: [] };
}
