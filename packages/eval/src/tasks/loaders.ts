/**
 * Loaders for the published benchmark formats. Each returns documents in file order (the order the
 * authors' HF datasets have, which the v0.3 shuffle depends on) and validates every record.
 */
import { basename } from "node:path";
import {
  describeValue,
  HippoError,
  isPlainObject,
  parseJsonSafe,
  readJsonlObjects,
  readTextFile,
} from "@hippocrates/core";
import { PyRandom } from "../pyrandom.js";
import { orderedJsonEntries, parseCsv } from "../readers.js";
import type { EvalDoc, TaskData } from "./types.js";

export const LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** Where a record is: its file and JSONL line, or its row (a JSON array's, a Hub split's). */
type RecordWhere = { file: string; line?: number; row?: number };

function requireString(record: Record<string, unknown>, key: string, where: RecordWhere): string {
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
  where: RecordWhere & { key: string },
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

export function checkIndex(value: unknown, nOptions: number, where: RecordWhere & { key: string }): number {
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
 * The document of a record whose gold is the integer index in field `key` (checked against the options); the
 * record itself is the samples file's `doc`.
 */
function indexedDoc(
  id: string,
  question: string,
  options: string[],
  { record, where }: SourceRecord,
  key: string,
): EvalDoc {
  return {
    id,
    question,
    options,
    gold: checkIndex(record[key], options.length, { ...where, key }),
    raw: record,
  };
}

/** A record and where it is: a JSONL line, a JSON array row, a parquet row of a Hub file. */
export interface SourceRecord {
  record: Record<string, unknown>;
  where: RecordWhere;
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
  return letterOptionsDocs(requireRecords(await readRecords(path), path), opts);
}

/** Records of the `{question, options: {A..}, answer_idx}` shape (a file's or a Hub split's) as documents. */
export function letterOptionsDocs(
  records: readonly SourceRecord[],
  opts: { dropNullOptions?: boolean } = {},
): EvalDoc[] {
  return records.map(({ record, where }, i) => {
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
    const options = optionTexts(rawOptions, where, opts.dropNullOptions);
    if (options.length < 2) {
      throw new HippoError("INVALID_RECORD", "a question needs at least two options", {
        ...where,
        key: "options",
        got: String(options.length),
      });
    }
    const gold = letterToIndex(record.answer_idx, options.length, { ...where, key: "answer_idx" });
    return { id: String(record.realidx ?? record.id ?? i), question, options, gold, raw: record };
  });
}

/** The texts of an `options` object (`{"A": "...", "B": "..."}`) in key order; null ones dropped when asked. */
function optionTexts(rawOptions: Record<string, unknown>, where: RecordWhere, dropNull = false): string[] {
  const options: string[] = [];
  for (const [k, v] of Object.entries(rawOptions)) {
    if (v === null && dropNull) continue;
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
  return options;
}

/**
 * `GBaker/MedQA-USMLE-4-options-hf` (lm-evaluation-harness 0.4 `medqa_4options`): `{id, sent1, sent2,
 * ending0..ending3, label}`, which the harness's `preprocess_medqa.py` (commit 8cb0844) reads as question `sent1`,
 * options `ending0..3`, gold `label`.
 */
export function endingsDocs(records: readonly SourceRecord[]): EvalDoc[] {
  return records.map((r, i) => {
    const question = requireString(r.record, "sent1", r.where);
    const options = [0, 1, 2, 3].map((k) => requireString(r.record, `ending${k}`, r.where));
    return indexedDoc(String(r.record.id ?? i), question, options, r, "label");
  });
}

/** MedQA records of either shape: the harness's `sent1`/`ending*` (GBaker) or `options` + `answer_idx`. */
function medqaDocs(records: readonly SourceRecord[]): EvalDoc[] {
  return records[0]?.record.sent1 !== undefined ? endingsDocs(records) : letterOptionsDocs(records);
}

/** JSONL, or a JSON array of records (how HF's `to_json` or a hand-written file may store them). */
async function readRecords(path: string): Promise<SourceRecord[]> {
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
      return { record, where: { file: path, row } };
    });
  }
  return (await readJsonlObjects(path)).map(({ line, record }) => ({ record, where: { file: path, line } }));
}

/**
 * MedMCQA in the shapes it is published in: the shared copy of the dev set, `{question, choices: ["A. text",
 * ...], answer: 0-3}`, whose option text is the choice without its "A. " prefix (on the 2,816 dev items that the
 * medagents copy, with the original uuids and `options` object, also holds, this gives exactly its option texts,
 * i.e. the original `opa..opd`); `openlifescienceai/medmcqa` (the harness 0.4's), `{id, question, opa..opd,
 * cop: 0-3, ...}` as its `utils_medmcqa.py` reads it; and `augtoma/medmcqa` (the v0.3 fork's), an `options`
 * object and an `answer_idx` letter.
 */
export async function loadMedmcqa(path: string): Promise<EvalDoc[]> {
  return medmcqaDocs(requireRecords(await readRecords(path), path));
}

export function medmcqaDocs(records: readonly SourceRecord[]): EvalDoc[] {
  return records.map(({ record, where }, i) => {
    const question = requireString(record, "question", where);
    if (record.choices === undefined && record.opa !== undefined) {
      const options = ["opa", "opb", "opc", "opd"].map((k) => requireString(record, k, where));
      return indexedDoc(String(record.id ?? i), question, options, { record, where }, "cop");
    }
    if (record.choices === undefined && isPlainObject(record.options)) {
      const options = optionTexts(record.options, where);
      return {
        id: String(record.id ?? i),
        question,
        options,
        gold: letterToIndex(record.answer_idx, options.length, { ...where, key: "answer_idx" }),
        raw: record,
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
    return indexedDoc(String(i), question, options, { record, where }, "answer");
  });
}

const PUBMEDQA_LABELS = ["yes", "no", "maybe"];

function pubmedqaDoc(id: string, value: unknown, where: RecordWhere & { key?: string }): EvalDoc {
  const at = (k: string) => ({ ...where, key: where.key === undefined ? k : `${where.key}.${k}` });
  if (!isPlainObject(value))
    throw new HippoError("INVALID_RECORD", "each PMID must map to an object", {
      ...where,
      got: describeValue(value),
    });
  // `pubmed_qa` / `pqa_labeled` (the v0.3 fork's): question, context.contexts; else the ori_pqal.json keys.
  const hf = value.QUESTION === undefined && value.question !== undefined;
  const question = hf ? value.question : value.QUESTION;
  const context = hf && isPlainObject(value.context) ? value.context : {};
  const contexts = hf ? context.contexts : value.CONTEXTS;
  const decision = value.final_decision;
  if (typeof question !== "string")
    throw new HippoError("INVALID_RECORD", `missing field "${hf ? "question" : "QUESTION"}"`, {
      ...at(hf ? "question" : "QUESTION"),
      got: describeValue(question),
    });
  if (!Array.isArray(contexts) || !contexts.every((c) => typeof c === "string")) {
    const key = hf ? "context.contexts" : "CONTEXTS";
    throw new HippoError("INVALID_RECORD", `field "${key}" must be an array of strings`, {
      ...at(key),
      got: describeValue(contexts),
    });
  }
  const gold = PUBMEDQA_LABELS.indexOf(decision as string);
  if (gold < 0)
    throw new HippoError("INVALID_RECORD", "final_decision must be yes, no or maybe", {
      ...at("final_decision"),
      got: describeValue(decision),
    });
  return {
    id,
    question,
    contexts: contexts as string[],
    options: PUBMEDQA_LABELS.slice(),
    gold,
    raw: value,
  };
}

/**
 * PubMedQA rows of a Hub split: `pubmed_qa` / `pqa_labeled` (`{pubid, question, context: {contexts, ...},
 * final_decision}`, id the PMID) or bigbio's source schema (ori_pqal.json's fields; no PMID column, so the id is
 * the row in the split).
 */
export function pubmedqaDocs(records: readonly SourceRecord[]): EvalDoc[] {
  return records.map(({ record, where }, i) =>
    pubmedqaDoc(
      record.pubid !== undefined && record.pubid !== null ? String(record.pubid) : String(i),
      record,
      where,
    ),
  );
}

/** The entries of a JSON object file in file key order (PubMedQA's files are objects keyed by PMID). */
async function readJsonEntries(path: string): Promise<[string, unknown][]> {
  return orderedJsonEntries(await readTextFile(path), path);
}

/** PQA-L `ori_pqal.json` in file key order (as HF's `pubmed_qa`/`pqa_labeled` "train" split, 1,000 rows). */
export async function loadPubmedqa(path: string): Promise<EvalDoc[]> {
  const entries = await readJsonEntries(path);
  if (entries.length === 0) throw noDocuments(path);
  return entries.map(([pmid, value]) => pubmedqaDoc(pmid, value, { file: path, key: pmid }));
}

/**
 * The official 500-item test split: the PMIDs of `test_ground_truth.json` in that file's order, with the
 * records from `ori_pqal.json`. A PMID missing from PQA-L or a label that disagrees is an error.
 */
export async function loadPubmedqaTest500(oriPath: string, truthPath: string): Promise<EvalDoc[]> {
  const all = new Map((await loadPubmedqa(oriPath)).map((d) => [d.id, d]));
  const truth = await readJsonEntries(truthPath);
  if (truth.length === 0) throw noDocuments(truthPath);
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

/**
 * PubMedQA's own split of PQA-L (`preprocess/split_dataset.py` of github.com/pubmedqa/pubmedqa, commit
 * 9b38747, run as `python split_dataset.py pqal`), which `bigbio/pubmed_qa`'s `pubmed_qa_labeled_fold{i}`
 * configs load: one `random.seed(0)` stream; the documents are grouped by label in file order (yes, no, maybe),
 * each group shuffled and cut in halves, the halves joined label by label; the second half is the test set
 * (500), the first is split the same way into 10 folds (the uneven last fold gets one random document from
 * each other fold). Fold 0: dev = fold 0 (50), train = folds 1..9 in order (450). Orders are the dicts'
 * insertion orders, which `json.dump` writes and the dataset loader reads back.
 */
export function splitPqal<T>(entries: readonly [string, T][], label: (value: T) => string) {
  const rnd = new PyRandom(0);
  const split = (dataset: readonly [string, T][], fold: number): [string, T][][] => {
    const byLabel = new Map<string, string[]>(PUBMEDQA_LABELS.map((l) => [l, []]));
    for (const [pmid, v] of dataset) byLabel.get(label(v))?.push(pmid);
    const parts = [...byLabel.values()].map((pmids) => {
      rnd.shuffle(pmids);
      const size = Math.ceil(pmids.length / fold);
      return Array.from({ length: fold }, (_, i) =>
        i === fold - 1 ? pmids.slice(i * size) : pmids.slice(i * size, (i + 1) * size),
      );
    });
    const values = new Map(dataset);
    const out = Array.from(
      { length: fold },
      (_, i) => new Map(parts.flatMap((p) => p[i] as string[]).map((id) => [id, values.get(id) as T])),
    );
    const last = out[fold - 1] as Map<string, T>;
    if (last.size !== (out[0] as Map<string, T>).size) {
      for (let i = 0; i < fold - 1; i++) {
        const fold_i = out[i] as Map<string, T>;
        const picked = rnd.choice([...fold_i.keys()]);
        last.set(picked, fold_i.get(picked) as T);
        fold_i.delete(picked);
      }
    }
    return out.map((m) => [...m.entries()]);
  };
  const [cv, test] = split(entries, 2) as [[string, T][], [string, T][]];
  const folds = split(cv, 10);
  return { test, dev: folds[0] as [string, T][], train: folds.slice(1).flat() };
}

/**
 * `bigbio/pubmed_qa` `pubmed_qa_labeled_fold0_source` rebuilt from `ori_pqal.json` (see `splitPqal`): test 500,
 * train 450, validation 50, each in its file's order. With `test_ground_truth.json` (the official test labels)
 * the rebuilt test split must hold exactly its PMIDs, in its order, with its labels.
 */
export async function loadPubmedqaFold0(oriPath: string, truthPath?: string): Promise<TaskData> {
  const docs = await loadPubmedqa(oriPath);
  const byId = new Map(docs.map((d) => [d.id, d]));
  const { test, train, dev } = splitPqal(
    docs.map((d) => [d.id, d] as [string, EvalDoc]),
    (d) => PUBMEDQA_LABELS[d.gold] as string,
  );
  if (truthPath !== undefined) {
    const truth = await readJsonEntries(truthPath);
    const n = Math.max(truth.length, test.length);
    for (let i = 0; i < n; i++) {
      const [pmid, label] = truth[i] ?? ["(none)", undefined];
      const ours = test[i]?.[0];
      if (pmid !== ours || PUBMEDQA_LABELS[byId.get(pmid)?.gold ?? -1] !== label) {
        throw new HippoError(
          "INVALID_RECORD",
          "the fold-0 test split rebuilt from PQA-L does not match the official test set",
          {
            file: truthPath,
            key: pmid,
            expected: `test item ${i + 1}: ${ours ?? "(none)"} (${ours ? PUBMEDQA_LABELS[byId.get(ours)?.gold ?? -1] : ""})`,
            got: `${pmid} (${describeValue(label)})`,
          },
        );
      }
    }
  }
  const pick = (xs: [string, EvalDoc][]) => xs.map(([, d]) => d);
  return {
    test: pick(test),
    train: pick(train),
    dev: pick(dev),
    files: { test: oriPath, train: oriPath, dev: oriPath },
  };
}

/**
 * MMLU CSV: header `question,choice0,...,choiceN,answer`; the answer an index (0-3) or a letter. The `doc` of a
 * samples file is the record as `cais/mmlu` holds it: `{question, subject, choices, answer}` (the subject from
 * the file name, `<subject>_test.csv`).
 */
export async function loadMmluCsv(path: string): Promise<EvalDoc[]> {
  const rows = parseCsv(await readTextFile(path), path);
  const header = rows[0];
  if (!header) throw noDocuments(path);
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
  const subject = basename(path).replace(/_(test|dev|val)\.csv$/, "");
  const docs = rows
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
      const question = r[qi] as string;
      return {
        id: String(i),
        question,
        options,
        gold,
        raw: { question, subject, choices: options, answer: gold },
      };
    });
  if (docs.length === 0) throw noDocuments(path);
  return docs;
}

/**
 * MMLU rows of a Hub split (`cais/mmlu`, `hails/mmlu_no_train`): `{question, subject, choices: [4 strings],
 * answer: 0-3}`, the record the harness logs as the sample's `doc`.
 */
export function mmluDocs(records: readonly SourceRecord[]): EvalDoc[] {
  return records.map(({ record, where }, i) => {
    const question = requireString(record, "question", where);
    const choices = record.choices;
    if (!Array.isArray(choices) || choices.length < 2 || !choices.every((c) => typeof c === "string"))
      throw new HippoError("INVALID_RECORD", 'field "choices" must be a list of option texts', {
        ...where,
        key: "choices",
        got: describeValue(choices),
      });
    return indexedDoc(String(i), question, choices as string[], { record, where }, "answer");
  });
}

/** A benchmark file with nothing to evaluate is an error, never a run that reports `acc: null`. */
export function noDocuments(file: string): HippoError {
  return new HippoError("INVALID_FORMAT", "no documents in the file", {
    file,
    expected: "at least one record",
    got: "none",
  });
}

function requireRecords<T>(records: T[], path: string): T[] {
  if (records.length === 0) throw noDocuments(path);
  return records;
}

/**
 * The loaders a task file names with `"loader"` (as lm-evaluation-harness's `!function`): code for source
 * formats that a field mapping cannot describe. `files` lists the keys of the task file's `files` each reads;
 * a key ending in `?` is optional (a missing file leaves its split out, and a few-shot run that needs it says
 * which file to supply).
 */
export interface TaskLoader {
  files: readonly string[];
  load(files: Record<string, string>, missing: Record<string, string>): Promise<TaskData>;
  /**
   * The documents of one split of the task's Hub dataset, from its rows as the repository holds them (absent
   * for a loader of a local-only format, such as the 500-PMID test file).
   */
  rows?(records: readonly SourceRecord[]): EvalDoc[];
}

/** A loader of a `test` file and an optional `train` file (the few-shot source) of one format. */
function testWithOptionalTrain(
  load: (path: string) => Promise<EvalDoc[]>,
  rows: (records: readonly SourceRecord[]) => EvalDoc[],
): TaskLoader {
  return {
    files: ["test", "train?"],
    load: async (files, missing) => {
      const data: TaskData = { test: await load(files.test as string), files: { test: files.test } };
      const path = files.train ?? missing.train;
      if (path !== undefined) data.files = { ...data.files, train: path };
      if (files.train !== undefined) data.train = await load(files.train);
      return data;
    },
    rows,
  };
}

export const TASK_LOADERS: Readonly<Record<string, TaskLoader>> = {
  /** MedQA as `augtoma/medqa_usmle` / the medagents copies: `{question, options: {A..}, answer_idx}`. */
  medqa: testWithOptionalTrain((p) => loadLetterOptionsJsonl(p), medqaDocs),
  /** `augtoma/usmle_self_eval_step*`: options A..G, absent ones null (dropped). */
  usmle: {
    files: ["test"],
    load: async (f) => ({
      test: await loadLetterOptionsJsonl(f.test as string, { dropNullOptions: true }),
      files: { test: f.test },
    }),
    rows: (records) => letterOptionsDocs(records, { dropNullOptions: true }),
  },
  medmcqa: testWithOptionalTrain(loadMedmcqa, medmcqaDocs),
  /** All 1,000 PQA-L rows in `ori_pqal.json` order (HF `pubmed_qa` / `pqa_labeled`, split "train"). */
  pubmedqa_pqal: {
    files: ["test"],
    load: async (f) => ({ test: await loadPubmedqa(f.test as string), files: { test: f.test } }),
    rows: pubmedqaDocs,
  },
  pubmedqa_test500: {
    files: ["pqal", "test_ground_truth"],
    load: async (f) => ({
      test: await loadPubmedqaTest500(f.pqal as string, f.test_ground_truth as string),
      files: { test: f.test_ground_truth },
    }),
  },
  pubmedqa_fold0: {
    files: ["pqal", "test_ground_truth?"],
    load: (f) => loadPubmedqaFold0(f.pqal as string, f.test_ground_truth),
    rows: pubmedqaDocs,
  },
  mmlu_csv: {
    files: ["test", "dev"],
    load: async (f) => ({
      test: await loadMmluCsv(f.test as string),
      dev: await loadMmluCsv(f.dev as string),
      files: { test: f.test, dev: f.dev },
    }),
    rows: mmluDocs,
  },
};
