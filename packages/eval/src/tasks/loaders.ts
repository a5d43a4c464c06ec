/**
 * Loaders for the published benchmark formats. Each returns documents in file order (the order the
 * authors' HF datasets have, which the v0.3 shuffle depends on) and validates every record.
 */
import { access } from "node:fs/promises";
import {
  describeValue,
  HippoError,
  isPlainObject,
  parseJsonSafe,
  readJsonlObjects,
  readTextFile,
} from "@hippocrates/core";
import { orderedJsonEntries, parseCsv } from "../readers.js";
import type { EvalDoc } from "./types.js";

export const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

export async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

function requireString(
  record: Record<string, unknown>,
  key: string,
  where: { file: string; line?: number; row?: number },
): string {
  const v = record[key];
  if (typeof v !== "string") {
    throw new HippoError(
      "INVALID_RECORD",
      v === undefined ? `missing field "${key}"` : `field "${key}" must be a string`,
      {
        ...where,
        key,
        expected: "string",
        got: describeValue(v),
      },
    );
  }
  return v;
}

/** A letter answer ("B") as an index, checked against the number of options. */
export function letterToIndex(
  letter: unknown,
  nOptions: number,
  where: { file: string; line?: number; row?: number; key: string },
): number {
  if (typeof letter !== "string" || letter.length !== 1 || !LETTERS.includes(letter)) {
    throw new HippoError("INVALID_RECORD", "answer must be one capital letter", {
      ...where,
      expected: "A, B, C, ...",
      got: describeValue(letter),
    });
  }
  // Python's ord(answer_idx) - ord("A"), as the fork computes gold.
  const gold = letter.charCodeAt(0) - 65;
  if (gold >= nOptions) {
    throw new HippoError("INVALID_RECORD", "answer index out of range", {
      ...where,
      expected: `a letter among the ${nOptions} options (A-${LETTERS[nOptions - 1]})`,
      got: letter,
    });
  }
  return gold;
}

export function checkIndex(
  value: unknown,
  nOptions: number,
  where: { file: string; line?: number; row?: number; key: string },
): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new HippoError("INVALID_RECORD", "answer must be an integer index", {
      ...where,
      expected: `0..${nOptions - 1}`,
      got: describeValue(value),
    });
  }
  if (value < 0 || value >= nOptions) {
    throw new HippoError("INVALID_RECORD", "answer index out of range", {
      ...where,
      expected: `0..${nOptions - 1}`,
      got: String(value),
    });
  }
  return value;
}

/**
 * `{question, options: {A: ..., B: ...}, answer_idx: "B"}` (MedQA as `augtoma/medqa_usmle` and the
 * medagents copies; the USMLE self-assessment sets, whose absent options are null and are dropped, as the
 * fork's `_process_doc` does). Options keep the object's key order.
 */
export async function loadLetterOptionsJsonl(
  path: string,
  opts: { dropNullOptions?: boolean } = {},
): Promise<EvalDoc[]> {
  const records = await readRecords(path);
  return records.map(({ line, row, record }, i) => {
    const where = { file: path, ...(line !== undefined ? { line } : { row }) };
    const question = requireString(record, "question", where);
    const rawOptions = record.options;
    if (!isPlainObject(rawOptions)) {
      throw new HippoError(
        "INVALID_RECORD",
        rawOptions === undefined
          ? 'missing field "options"'
          : 'field "options" must be an object of lettered options',
        {
          ...where,
          key: "options",
          expected: '{"A": "...", "B": "..."}',
          got: describeValue(rawOptions),
        },
      );
    }
    const options: string[] = [];
    for (const [k, v] of Object.entries(rawOptions)) {
      if (v === null && opts.dropNullOptions) continue;
      if (typeof v !== "string") {
        throw new HippoError("INVALID_RECORD", "option text must be a string", {
          ...where,
          key: `options.${k}`,
          expected: "string",
          got: describeValue(v),
        });
      }
      options.push(v);
    }
    if (options.length < 2) {
      throw new HippoError("INVALID_RECORD", "a question needs at least two options", {
        ...where,
        key: "options",
        got: String(options.length),
      });
    }
    const gold = letterToIndex(record.answer_idx, options.length, { ...where, key: "answer_idx" });
    const meta: Record<string, unknown> = {};
    if (record.meta_info !== undefined) meta.meta_info = record.meta_info;
    return { id: String(record.realidx ?? record.id ?? i), question, options, gold, meta };
  });
}

/** JSONL, or a JSON array of records (how HF's `to_json` or a hand-written file may store them). */
async function readRecords(
  path: string,
): Promise<{ line?: number; row?: number; record: Record<string, unknown> }[]> {
  const text = await readTextFile(path);
  if (text.trimStart().startsWith("[")) {
    const arr = parseJsonSafe(text, path);
    if (!Array.isArray(arr))
      throw new HippoError("INVALID_FORMAT", "expected a JSON array of records", { file: path });
    return arr.map((record, row) => {
      if (!isPlainObject(record)) {
        throw new HippoError("INVALID_RECORD", "each record must be an object", {
          file: path,
          row,
          got: describeValue(record),
        });
      }
      return { row, record };
    });
  }
  return readJsonlObjects(path);
}

/**
 * MedMCQA dev as published in the shared copy: `{question, choices: ["A. text", ...], answer: 0-3}`. The
 * option text is the choice without its "A. " prefix: on the 2,816 dev items that the medagents copy (with
 * the original uuids and `options` object) also holds, this gives exactly its option texts, i.e. the original
 * `opa..opd` that `augtoma/medmcqa` stores as `options`. Records in the augtoma shape (`options` object +
 * `answer_idx` letter) are accepted too, for a training file.
 */
export async function loadMedmcqa(path: string): Promise<EvalDoc[]> {
  const records = await readRecords(path);
  return records.map(({ line, row, record }, i) => {
    const where = { file: path, ...(line !== undefined ? { line } : { row }) };
    const question = requireString(record, "question", where);
    if (record.choices === undefined && isPlainObject(record.options)) {
      const options = Object.values(record.options).map((v, k) => {
        if (typeof v !== "string")
          throw new HippoError("INVALID_RECORD", "option text must be a string", {
            ...where,
            key: `options.${LETTERS[k]}`,
            got: describeValue(v),
          });
        return v;
      });
      return {
        id: String(record.id ?? i),
        question,
        options,
        gold: letterToIndex(record.answer_idx, options.length, { ...where, key: "answer_idx" }),
      };
    }
    const choices = record.choices;
    if (!Array.isArray(choices)) {
      throw new HippoError(
        "INVALID_RECORD",
        choices === undefined ? 'missing field "choices"' : 'field "choices" must be an array',
        {
          ...where,
          key: "choices",
          expected: '["A. ...", "B. ...", ...]',
          got: describeValue(choices),
        },
      );
    }
    const options = choices.map((c, k) => {
      const prefix = `${LETTERS[k]}. `;
      if (typeof c !== "string" || !c.startsWith(prefix)) {
        throw new HippoError("INVALID_RECORD", `choice must start with "${prefix}"`, {
          ...where,
          key: `choices[${k}]`,
          got: describeValue(c),
        });
      }
      return c.slice(prefix.length);
    });
    return {
      id: String(i),
      question,
      options,
      gold: checkIndex(record.answer, options.length, { ...where, key: "answer" }),
    };
  });
}

const PUBMEDQA_LABELS = ["yes", "no", "maybe"];

function pubmedqaDoc(pmid: string, value: unknown, file: string): EvalDoc {
  if (!isPlainObject(value))
    throw new HippoError("INVALID_RECORD", "each PMID must map to an object", {
      file,
      key: pmid,
      got: describeValue(value),
    });
  const question = value.QUESTION;
  const contexts = value.CONTEXTS;
  const decision = value.final_decision;
  if (typeof question !== "string")
    throw new HippoError("INVALID_RECORD", 'missing field "QUESTION"', {
      file,
      key: `${pmid}.QUESTION`,
      got: describeValue(question),
    });
  if (!Array.isArray(contexts) || !contexts.every((c) => typeof c === "string")) {
    throw new HippoError("INVALID_RECORD", 'field "CONTEXTS" must be an array of strings', {
      file,
      key: `${pmid}.CONTEXTS`,
      got: describeValue(contexts),
    });
  }
  const gold = PUBMEDQA_LABELS.indexOf(decision as string);
  if (gold < 0)
    throw new HippoError("INVALID_RECORD", "final_decision must be yes, no or maybe", {
      file,
      key: `${pmid}.final_decision`,
      got: describeValue(decision),
    });
  return { id: pmid, question, contexts: contexts as string[], options: PUBMEDQA_LABELS.slice(), gold };
}

/** PQA-L `ori_pqal.json` in file key order (as HF's `pubmed_qa`/`pqa_labeled` "train" split, 1,000 rows). */
export async function loadPubmedqa(path: string): Promise<EvalDoc[]> {
  const entries = orderedJsonEntries(await readTextFile(path), path);
  return entries.map(([pmid, value]) => pubmedqaDoc(pmid, value, path));
}

/**
 * The official 500-item test split: the PMIDs of `test_ground_truth.json` in that file's order, with the
 * records from `ori_pqal.json`. A PMID missing from PQA-L or a label that disagrees is an error.
 */
export async function loadPubmedqaTest500(oriPath: string, truthPath: string): Promise<EvalDoc[]> {
  const all = new Map((await loadPubmedqa(oriPath)).map((d) => [d.id, d]));
  const truth = orderedJsonEntries(await readTextFile(truthPath), truthPath);
  return truth.map(([pmid, label]) => {
    const doc = all.get(pmid);
    if (!doc)
      throw new HippoError("INVALID_RECORD", "test PMID not found in PQA-L", { file: truthPath, key: pmid });
    if (PUBMEDQA_LABELS[doc.gold] !== label) {
      throw new HippoError("INVALID_RECORD", "test label disagrees with PQA-L", {
        file: truthPath,
        key: pmid,
        expected: PUBMEDQA_LABELS[doc.gold],
        got: describeValue(label),
      });
    }
    return doc;
  });
}

/** MMLU CSV: header `question,choice0,...,choiceN,answer`; the answer an index (0-3) or a letter. */
export async function loadMmluCsv(path: string, subject: string): Promise<EvalDoc[]> {
  const rows = parseCsv(await readTextFile(path), path);
  const header = rows[0];
  if (!header) throw new HippoError("INVALID_FORMAT", "empty CSV file", { file: path });
  const qi = header.indexOf("question");
  const ai = header.indexOf("answer");
  const ci = header.map((h, i) => (/^choice\d+$/.test(h) ? i : -1)).filter((i) => i >= 0);
  if (qi < 0 || ai < 0 || ci.length < 2) {
    throw new HippoError("INVALID_FORMAT", "CSV header must have question, choice0..choiceN and answer", {
      file: path,
      line: 1,
      expected: "question,choice0,choice1,choice2,choice3,answer",
      got: header.join(","),
    });
  }
  return rows
    .slice(1)
    .filter((r) => !(r.length === 1 && r[0] === ""))
    .map((r, i) => {
      const where = { file: path, row: i + 1, key: "answer" };
      if (r.length !== header.length) {
        throw new HippoError("INVALID_RECORD", "wrong number of CSV fields", {
          file: path,
          row: i + 1,
          expected: String(header.length),
          got: String(r.length),
        });
      }
      const options = ci.map((c) => r[c] as string);
      const a = (r[ai] as string).trim();
      const gold = /^\d+$/.test(a)
        ? checkIndex(Number(a), options.length, where)
        : letterToIndex(a, options.length, where);
      return { id: String(i), question: r[qi] as string, options, gold, meta: { subject } };
    });
}
