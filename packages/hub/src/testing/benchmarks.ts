/**
 * The benchmark files of `../shared/data/benchmarks` laid out and encoded as the Hub repositories that
 * lm-evaluation-harness (0.4 task yamls, and the Hippocrates authors' 0.3 fork) loads them from, for tests
 * that fetch datasets by id from the loopback Hub. Column names, types and row order follow the real
 * repositories as far as they could be established (see the package README's table); columns the shared copies
 * do not have are written as nulls, never invented. Parquet is written with hyparquet-writer, with the
 * `huggingface` key-value metadata (`{"info": {"features": ...}}`) the datasets library stores.
 */
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { HippoError, jsonlLine, readJsonlObjects } from "@hippocrates/core";
import { parse as parseCsv } from "csv-parse/sync";
import { parquetWriteBuffer } from "hyparquet-writer";
import type { RepoFileSpec, RepoSpec } from "./repo.js";

// ---------------------------------------------------------------------------------------------------------
// Parquet as pyarrow writes datasets' features: strings BYTE_ARRAY/UTF8, Sequence -> 3-level LIST with
// `list`/`element`, dict features -> a group, ClassLabel -> INT64; every column nullable.

/** hyparquet-writer's schema element (its own hyparquet version's type). */
type SchemaElement = NonNullable<Parameters<typeof parquetWriteBuffer>[0]["schema"]>[number];
type Column = { schema: SchemaElement[]; feature: unknown };

const str = (name: string): Column => ({
  schema: [{ name, type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" }],
  feature: { dtype: "string", _type: "Value" },
});
const int = (name: string, bits: 32 | 64): Column => ({
  schema: [{ name, type: bits === 32 ? "INT32" : "INT64", repetition_type: "OPTIONAL" }],
  feature: { dtype: `int${bits}`, _type: "Value" },
});
const classLabel = (name: string, names: string[]): Column => ({
  schema: [{ name, type: "INT64", repetition_type: "OPTIONAL" }],
  feature: { names, _type: "ClassLabel" },
});
const stringList = (name: string): Column => ({
  schema: [
    { name, repetition_type: "OPTIONAL", converted_type: "LIST", num_children: 1 },
    { name: "list", repetition_type: "REPEATED", num_children: 1 },
    { name: "element", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
  ],
  feature: { feature: { dtype: "string", _type: "Value" }, _type: "Sequence" },
});
/** A dict feature (struct); `asSequence` is datasets' Sequence-of-dict, stored as a struct of lists. */
const struct = (name: string, children: Column[], asSequence = false): Column => {
  const inner = Object.fromEntries(
    children.map((c) => [
      c.schema[0]?.name,
      asSequence ? (c.feature as { feature: unknown }).feature : c.feature,
    ]),
  );
  return {
    schema: [
      { name, repetition_type: "OPTIONAL", num_children: children.length },
      ...children.flatMap((c) => c.schema),
    ],
    feature: asSequence ? { feature: inner, _type: "Sequence" } : inner,
  };
};

/** A parquet file of `rows` (objects keyed by column name) with the columns in the given order. */
export function writeHfParquet(columns: Column[], rows: Record<string, unknown>[]): Uint8Array {
  const schema: SchemaElement[] = [
    { name: "schema", num_children: columns.length },
    ...columns.flatMap((c) => c.schema),
  ];
  const features = Object.fromEntries(columns.map((c) => [c.schema[0]?.name, c.feature]));
  const buffer = parquetWriteBuffer({
    schema,
    columnData: columns.map((c) => {
      const name = c.schema[0]?.name as string;
      const int64 = c.schema[0]?.type === "INT64"; // hyparquet-writer takes INT64 values as bigints
      return {
        name,
        data: rows.map((r) => (r[name] == null ? null : int64 ? BigInt(r[name] as number) : r[name])),
      };
    }),
    kvMetadata: [{ key: "huggingface", value: JSON.stringify({ info: { features } }) }],
  });
  return new Uint8Array(buffer);
}

/** The README front matter a `push_to_hub` upload writes: one `configs` entry per config. */
function readmeWithConfigs(configs: Record<string, Record<string, string>>, extra = ""): string {
  const lines = ["---", ...(extra === "" ? [] : [extra]), "configs:"];
  for (const [name, splits] of Object.entries(configs)) {
    lines.push(`- config_name: ${name}`, "  data_files:");
    for (const [split, path] of Object.entries(splits))
      lines.push(`  - split: ${split}`, `    path: ${path}`);
  }
  lines.push("---", "");
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------------------
// Reading the shared copies.

async function jsonl(path: string): Promise<Record<string, unknown>[]> {
  return (await readJsonlObjects(path)).map((l) => l.record);
}

/** Top-level keys of a JSON object in file order (JSON.parse reorders integer-like keys such as PMIDs). */
export function objectKeysInOrder(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (/\s/.test(text[k] ?? "")) k++;
        if (text[k] === ":") keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      }
      i = j;
    } else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
  }
  return keys;
}

type PqalItem = {
  QUESTION: string;
  CONTEXTS: string[];
  LABELS: string[];
  MESHES: string[];
  YEAR: string;
  reasoning_required_pred: string;
  reasoning_free_pred: string;
  final_decision: string;
  LONG_ANSWER: string;
};

async function readPqal(shared: string): Promise<[string, PqalItem][]> {
  const file = join(shared, "benchmarks/pubmedqa/ori_pqal.json");
  const text = await readFile(file, "utf8");
  const items = JSON.parse(text) as Record<string, PqalItem>;
  return objectKeysInOrder(text).map((k) => [k, items[k] as PqalItem]);
}

/**
 * PubMedQA's fold-0 split as PMID lists in file order: `pqal_fold0/train_set.json` (450),
 * `pqal_fold0/dev_set.json` (50) and the 500-item `pqal_test_set.json`, which `bigbio/pubmed_qa`'s
 * `pubmed_qa_labeled_fold0_source` serves as train / validation / test. This module does not compute it (the
 * one implementation is @hippocrates/eval's `splitPqal`, checked there against CPython's run of PubMedQA's
 * `split_dataset.py`): the caller passes it.
 */
export interface PubmedqaFold0 {
  train: string[];
  validation: string[];
  test: string[];
}

// ---------------------------------------------------------------------------------------------------------
// The repositories.

const LETTERS = ["A", "B", "C", "D"];

/**
 * `GBaker/MedQA-USMLE-4-options-hf` (lm-evaluation-harness 0.4 `medqa_4options`): JSON Lines files `train.json`,
 * `dev.json`, `test.json` at the root (the datasets library maps `dev` to `validation`), rows
 * `{id, sent1, sent2, ending0..ending3, label}`. Only `test.json` (1,273 rows) can be built from the shared copy.
 */
export async function medqaHfRepo(shared: string): Promise<RepoSpec> {
  const rows = await jsonl(join(shared, "benchmarks/medqa/medqa_us_4options_test.jsonl"));
  const lines = rows.map((r, i) => {
    const options = r.options as Record<string, string>;
    const label = LETTERS.indexOf(r.answer_idx as string);
    if (label < 0)
      throw new HippoError("INVALID_RECORD", "answer_idx is not A-D", { row: i, got: String(r.answer_idx) });
    return jsonlLine({
      id: `test-${String(i).padStart(5, "0")}`,
      sent1: r.question,
      sent2: "",
      ending0: options.A,
      ending1: options.B,
      ending2: options.C,
      ending3: options.D,
      label,
    });
  });
  return {
    id: "GBaker/MedQA-USMLE-4-options-hf",
    type: "dataset",
    files: [
      { path: "README.md", content: "---\nlicense: cc-by-sa-4.0\n---\n" },
      { path: "test.json", content: lines.join("") },
    ],
  };
}

const medqaColumns = (): Column[] => [
  str("question"),
  str("answer"),
  struct("options", LETTERS.map(str)),
  str("meta_info"),
  str("answer_idx"),
  stringList("metamap_phrases"),
];

/**
 * `augtoma/medqa_usmle` (the authors' v0.3 fork, `medqa_usmle`): a push_to_hub parquet upload,
 * `data/train-00000-of-00001-a6e6f83961340098.parquet` and `data/test-00000-of-00001-997553f5b24c9767.parquet`,
 * with the original MedQA jsonl columns. Only the test split (1,273 rows) can be built from the shared copy.
 */
export async function augtomaMedqaRepo(shared: string): Promise<RepoSpec> {
  const rows = await jsonl(join(shared, "benchmarks/medqa/medqa_us_4options_test.jsonl"));
  return {
    id: "augtoma/medqa_usmle",
    type: "dataset",
    files: [
      { path: "README.md", content: readmeWithConfigs({ default: { test: "data/test-*" } }) },
      {
        path: "data/test-00000-of-00001-997553f5b24c9767.parquet",
        content: writeHfParquet(medqaColumns(), rows),
      },
    ],
  };
}

/**
 * `openlifescienceai/medmcqa` (0.4 `medmcqa`, test_split validation): `data/{train,validation,test}-00000-of-00001.parquet`
 * with MedMCQA's columns. The shared copy has question, the four options and the answer of the 4,183 validation
 * rows; `id`, `choice_type`, `exp`, `subject_name` and `topic_name` are nulls.
 */
export async function medmcqaRepo(shared: string): Promise<RepoSpec> {
  const rows = (await jsonl(join(shared, "benchmarks/medmcqa/medmcqa_validation_4183.jsonl"))).map((r, i) => {
    const choices = r.choices as string[];
    const opts = choices.map((c, k) => {
      const prefix = `${LETTERS[k]}. `;
      if (!c.startsWith(prefix))
        throw new HippoError("INVALID_RECORD", "choice lacks its letter prefix", {
          row: i,
          expected: prefix,
        });
      return c.slice(prefix.length);
    });
    return { question: r.question, opa: opts[0], opb: opts[1], opc: opts[2], opd: opts[3], cop: r.answer };
  });
  const columns = [
    str("id"),
    str("question"),
    str("opa"),
    str("opb"),
    str("opc"),
    str("opd"),
    classLabel("cop", ["a", "b", "c", "d"]),
    str("choice_type"),
    str("exp"),
    str("subject_name"),
    str("topic_name"),
  ];
  return {
    id: "openlifescienceai/medmcqa",
    type: "dataset",
    files: [
      { path: "README.md", content: "---\nlicense: apache-2.0\n---\n" },
      { path: "data/validation-00000-of-00001.parquet", content: writeHfParquet(columns, rows) },
    ],
  };
}

/**
 * `augtoma/medmcqa` (v0.3 fork, `medmcqa`, test split): the fork reads `question`, `options` (A-D) and
 * `answer_idx`; its test split is MedMCQA's 4,183-row validation set. The file name follows the sibling
 * `augtoma/medqa_usmle` upload; the exact name and any further columns could not be checked.
 */
export async function augtomaMedmcqaRepo(shared: string): Promise<RepoSpec> {
  const rows = (await jsonl(join(shared, "benchmarks/medmcqa/medmcqa_validation_4183.jsonl"))).map((r) => {
    const choices = (r.choices as string[]).map((c) => c.slice(3));
    const answer = r.answer as number;
    return {
      question: r.question,
      answer: choices[answer],
      options: Object.fromEntries(LETTERS.map((l, k) => [l, choices[k]])),
      answer_idx: LETTERS[answer],
    };
  });
  const columns = [str("question"), str("answer"), struct("options", LETTERS.map(str)), str("answer_idx")];
  return {
    id: "augtoma/medmcqa",
    type: "dataset",
    files: [
      { path: "README.md", content: readmeWithConfigs({ default: { test: "data/test-*" } }) },
      { path: "data/test-00000-of-00001.parquet", content: writeHfParquet(columns, rows) },
    ],
  };
}

/**
 * `qiaojin/PubMedQA` (`pubmed_qa` before the Hub moved canonical datasets into organisations; the v0.3 fork's
 * `pubmedqa` task loads `pubmed_qa`/`pqa_labeled`, split `train`): `pqa_labeled/train-00000-of-00001.parquet`,
 * 1,000 rows in ori_pqal.json order, columns of the old loading script: pubid int32, question, context (a
 * Sequence of {contexts, labels, meshes, reasoning_required_pred, reasoning_free_pred}, stored as a struct of
 * string lists: the two *_pred strings became lists of characters, e.g. ["y","e","s"]), long_answer,
 * final_decision. `aliases` makes the loopback Hub answer the old id with a redirect.
 */
export async function pubmedqaRepo(shared: string): Promise<RepoSpec> {
  const items = await readPqal(shared);
  const rows = items.map(([id, it]) => ({
    pubid: Number(id),
    question: it.QUESTION,
    context: {
      contexts: it.CONTEXTS,
      labels: it.LABELS,
      meshes: it.MESHES,
      reasoning_required_pred: [...it.reasoning_required_pred],
      reasoning_free_pred: [...it.reasoning_free_pred],
    },
    long_answer: it.LONG_ANSWER,
    final_decision: it.final_decision,
  }));
  const columns = [
    int("pubid", 32),
    str("question"),
    struct(
      "context",
      ["contexts", "labels", "meshes", "reasoning_required_pred", "reasoning_free_pred"].map(stringList),
      true,
    ),
    str("long_answer"),
    str("final_decision"),
  ];
  return {
    id: "qiaojin/PubMedQA",
    type: "dataset",
    aliases: ["pubmed_qa"],
    files: [
      {
        path: "README.md",
        content: readmeWithConfigs({ pqa_labeled: { train: "pqa_labeled/train-*" } }, "license: mit"),
      },
      { path: "pqa_labeled/train-00000-of-00001.parquet", content: writeHfParquet(columns, rows) },
    ],
  };
}

/**
 * `bigbio/pubmed_qa` (0.4 `pubmedqa`: config `pubmed_qa_labeled_fold0_source`, test split): a loading script on
 * `main` (not run here), whose parquet export on `refs/convert/parquet` holds
 * `pubmed_qa_labeled_fold0_source/{train,validation,test}/0000.parquet` with the source schema (QUESTION,
 * CONTEXTS, LABELS, MESHES, YEAR, reasoning_required_pred, reasoning_free_pred, final_decision, LONG_ANSWER),
 * rows in the order of `fold0`, PubMedQA's fold-0 split (`PubmedqaFold0`, from the caller).
 */
export async function bigbioPubmedqaRepo(shared: string, fold0: PubmedqaFold0): Promise<RepoSpec> {
  const byId = new Map(await readPqal(shared));
  const { train, validation, test } = fold0;
  for (const id of [...train, ...validation, ...test])
    if (!byId.has(id))
      throw new HippoError("INVALID_RECORD", "a fold-0 PMID is not in ori_pqal.json", {
        file: join(shared, "benchmarks/pubmedqa/ori_pqal.json"),
        key: id,
      });
  const columns = [
    str("QUESTION"),
    stringList("CONTEXTS"),
    stringList("LABELS"),
    stringList("MESHES"),
    str("YEAR"),
    str("reasoning_required_pred"),
    str("reasoning_free_pred"),
    str("final_decision"),
    str("LONG_ANSWER"),
  ];
  const parquet = (ids: string[]) =>
    writeHfParquet(
      columns,
      ids.map((id) => ({ ...(byId.get(id) as PqalItem) })),
    );
  const config = "pubmed_qa_labeled_fold0_source";
  const exported: RepoFileSpec[] = [
    { path: `${config}/train/0000.parquet`, content: parquet(train) },
    { path: `${config}/validation/0000.parquet`, content: parquet(validation) },
    { path: `${config}/test/0000.parquet`, content: parquet(test) },
  ];
  return {
    id: "bigbio/pubmed_qa",
    type: "dataset",
    files: [
      { path: "README.md", content: "---\nlicense: mit\n---\n# PubMedQA (BigBio)\n" },
      {
        path: "pubmed_qa.py",
        content: "# loading script of bigbio/pubmed_qa (not reproduced here; not run)\n",
      },
    ],
    revisions: { "refs/convert/parquet": exported },
  };
}

/** The subjects of the shared copy (its `test/<subject>_test.csv` files: the six medical ones), by name. */
async function mmluSubjects(shared: string): Promise<string[]> {
  const names = await readdir(join(shared, "benchmarks/mmlu_medical/test"));
  return names
    .filter((n) => n.endsWith("_test.csv"))
    .map((n) => n.slice(0, -"_test.csv".length))
    .sort();
}

/**
 * MMLU as `cais/mmlu` lays it out and `hails/mmlu_no_train` (0.4 `mmlu_*`, test split, few-shot from `dev`)
 * copies it: `<subject>/{test,validation,dev}-00000-of-00001.parquet`, one README config per subject, columns
 * question, subject, choices (list of 4 strings), answer (ClassLabel A-D, int64). Built for the subjects the
 * shared copy holds (the six medical ones), test and dev splits (the shared copy has no validation split).
 */
export async function mmluRepo(shared: string, id = "hails/mmlu_no_train"): Promise<RepoSpec> {
  const columns = [str("question"), str("subject"), stringList("choices"), classLabel("answer", LETTERS)];
  const files: RepoFileSpec[] = [];
  const configs: Record<string, Record<string, string>> = {};
  for (const subject of await mmluSubjects(shared)) {
    configs[subject] = { test: `${subject}/test-*`, dev: `${subject}/dev-*` };
    for (const split of ["test", "dev"]) {
      const file = join(shared, `benchmarks/mmlu_medical/${split}/${subject}_${split}.csv`);
      const records = parseCsv(await readFile(file, "utf8"), { columns: true }) as Record<string, string>[];
      const rows = records.map((r) => ({
        question: r.question,
        subject,
        choices: [r.choice0, r.choice1, r.choice2, r.choice3],
        answer: Number(r.answer),
      }));
      files.push({
        path: `${subject}/${split}-00000-of-00001.parquet`,
        content: writeHfParquet(columns, rows),
      });
    }
  }
  return {
    id,
    type: "dataset",
    files: [{ path: "README.md", content: readmeWithConfigs(configs, "license: mit") }, ...files],
  };
}

/**
 * Every benchmark repository buildable from `../shared/data`, for one loopback Hub; `bigbio/pubmed_qa` only when
 * the caller gives PubMedQA's fold-0 split (eval's `splitPqal` computes it).
 */
export async function benchmarkRepos(
  shared: string,
  options: { pubmedqaFold0?: PubmedqaFold0 } = {},
): Promise<RepoSpec[]> {
  const fold0 = options.pubmedqaFold0;
  return Promise.all([
    medqaHfRepo(shared),
    augtomaMedqaRepo(shared),
    medmcqaRepo(shared),
    augtomaMedmcqaRepo(shared),
    pubmedqaRepo(shared),
    ...(fold0 === undefined ? [] : [bigbioPubmedqaRepo(shared, fold0)]),
    mmluRepo(shared, "hails/mmlu_no_train"),
    mmluRepo(shared, "cais/mmlu"),
  ]);
}
