/**
 * A task's documents from its Hugging Face Hub dataset, named in the task file with lm-evaluation-harness's
 * dataset keys (`lm_eval/api/task.py` `TaskConfig`, 0.4.9.1):
 *
 *   "dataset": { "dataset_path": "openlifescienceai/medmcqa", "dataset_name": null,
 *                "dataset_kwargs": { "revision": "91c6572c..." },
 *                "training_split": "train", "validation_split": "validation", "test_split": "validation",
 *                "fewshot_split": "train" }
 *
 * `dataset_kwargs` is what the harness passes on to `datasets.load_dataset`; the keys read here are `revision`
 * (pin a commit, branch or tag) and `data_files` (glob patterns, one list or per split). The evaluation split is
 * `test_split`, else `validation_split` (`Task.eval_docs`); few-shot examples come from `fewshot_split`, else
 * `training_split` (random draws) or `validation_split` (MMLU's `first_n` over `dev`) (`Task.fewshot_docs`).
 *
 * Files are fetched into the Hub cache that Python's tools share with @hippocrates/hub's `fetchDatasetFiles`,
 * which picks them as the datasets library does, and read with @hippocrates/data's record readers (parquet,
 * JSON Lines, JSON, CSV). Both are imported when a task first reads the Hub, so evaluating local files never
 * loads them.
 */
import { describeValue, HippoError, isPlainObject, unknownNameMessage } from "@hippocrates/core";
import type { RawRecord } from "@hippocrates/data";
import type { DatasetFile, HubOptions } from "@hippocrates/hub";
import type { DatasetSource } from "./types.js";

/** The dataset keys of a task file, checked. */
export interface TaskDataset {
  /** `dataset_path`: the repository id. */
  path: string;
  /** `dataset_name`: the config (default: the repository's default config). */
  name: string | undefined;
  /** `dataset_kwargs.revision`; default `main`. */
  revision: string;
  /** `dataset_kwargs.data_files`: patterns for every split, or per split. */
  dataFiles: string[] | Record<string, string[]> | undefined;
  /** The split evaluated: `test_split`, else `validation_split`. */
  evalSplit: string;
  trainingSplit: string | undefined;
  validationSplit: string | undefined;
  fewshotSplit: string | undefined;
}

/** One record of a Hub data file, with where it is (for errors). */
export interface DatasetRow {
  record: Record<string, unknown>;
  where: { file: string; line?: number; row?: number };
}

const DATASET_KEYS = [
  "dataset_path",
  "dataset_name",
  "dataset_kwargs",
  "training_split",
  "validation_split",
  "test_split",
  "fewshot_split",
] as const;
const KWARGS_KEYS = ["revision", "data_files"] as const;

function fail(file: string, key: string, reason: string, expected?: string, got?: string): never {
  throw new HippoError("INVALID_CONFIG", reason, { file, key, expected, got });
}

function optionalString(v: unknown, file: string, key: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string" || v === "")
    fail(file, key, `${key} must be a string`, "string", describeValue(v));
  return v;
}

function patternList(v: unknown, file: string, key: string): string[] {
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || list.length === 0 || !list.every((p) => typeof p === "string" && p !== ""))
    fail(
      file,
      key,
      "data_files must be a glob pattern or a list of them",
      "string or [string]",
      describeValue(v),
    );
  return list as string[];
}

/**
 * The task file's `dataset` block: undefined when it names no repository (a task of local files only). Unknown
 * keys are errors, so a misspelt `test_split` does not silently evaluate another split.
 */
export function parseTaskDataset(v: unknown, file: string): TaskDataset | undefined {
  if (v === undefined) return undefined;
  if (!isPlainObject(v)) fail(file, "dataset", "dataset must be an object of the harness's dataset keys");
  for (const k of Object.keys(v))
    if (!(DATASET_KEYS as readonly string[]).includes(k))
      fail(file, `dataset.${k}`, unknownNameMessage("dataset key", k, DATASET_KEYS), DATASET_KEYS.join(", "));
  const path = optionalString(v.dataset_path, file, "dataset.dataset_path");
  if (path === undefined) {
    if (Object.keys(v).length > 0)
      fail(file, "dataset.dataset_path", 'missing field "dataset.dataset_path" (the Hub dataset id)');
    return undefined;
  }
  const kwargs = v.dataset_kwargs ?? {};
  if (!isPlainObject(kwargs))
    fail(file, "dataset.dataset_kwargs", "dataset_kwargs must be an object", "object", describeValue(kwargs));
  for (const k of Object.keys(kwargs))
    if (!(KWARGS_KEYS as readonly string[]).includes(k))
      fail(
        file,
        `dataset.dataset_kwargs.${k}`,
        `${unknownNameMessage("dataset_kwargs key", k, KWARGS_KEYS)} (the datasets library's other arguments do not apply: no loading script is run)`,
        KWARGS_KEYS.join(", "),
      );
  let dataFiles: TaskDataset["dataFiles"];
  const df = kwargs.data_files;
  if (isPlainObject(df))
    dataFiles = Object.fromEntries(
      Object.entries(df).map(([split, p]) => [
        split,
        patternList(p, file, `dataset.dataset_kwargs.data_files.${split}`),
      ]),
    );
  else if (df !== undefined) dataFiles = patternList(df, file, "dataset.dataset_kwargs.data_files");
  const split = (k: string) => optionalString(v[k], file, `dataset.${k}`);
  const testSplit = split("test_split");
  const validationSplit = split("validation_split");
  const evalSplit = testSplit ?? validationSplit;
  if (evalSplit === undefined)
    fail(
      file,
      "dataset.test_split",
      "a Hub dataset needs test_split (or validation_split): the split evaluated",
    );
  return {
    path,
    name: optionalString(v.dataset_name, file, "dataset.dataset_name"),
    revision: optionalString(kwargs.revision, file, "dataset.dataset_kwargs.revision") ?? "main",
    dataFiles,
    evalSplit,
    trainingSplit: split("training_split"),
    validationSplit,
    fewshotSplit: split("fewshot_split"),
  };
}

/** The split few-shot examples come from for a task's few-shot source (`Task.fewshot_docs`). */
export function fewshotSplitOf(ds: TaskDataset, source: "train" | "dev_first_k"): string | undefined {
  return ds.fewshotSplit ?? (source === "train" ? ds.trainingSplit : ds.validationSplit);
}

async function records(path: string, format: "parquet" | "json" | "jsonl" | "csv"): Promise<RawRecord[]> {
  const { readRawRecords } = await import("@hippocrates/data");
  const out: RawRecord[] = [];
  for await (const r of readRawRecords(path, { format })) out.push(r);
  return out;
}

/**
 * Records of a `.json` file: JSON Lines first, then one JSON document, as the datasets json builder tries them
 * (`GBaker/MedQA-USMLE-4-options-hf`'s `test.json` is JSON Lines).
 */
async function jsonRecords(path: string): Promise<RawRecord[]> {
  try {
    const lines = await records(path, "jsonl");
    // A one-line JSON array parses as JSON Lines too: it is one document.
    if (lines.every((r) => isPlainObject(r.value))) return lines;
  } catch (e) {
    if (!(e instanceof HippoError) || e.code !== "INVALID_FORMAT") throw e;
  }
  return records(path, "json");
}

async function readFileRows(f: DatasetFile): Promise<DatasetRow[]> {
  if (f.format !== "parquet" && f.format !== "json" && f.format !== "jsonl" && f.format !== "csv")
    throw new HippoError("UNSUPPORTED", `Hub data files in ${f.format} format are not read`, {
      file: f.localPath,
      expected: "parquet, JSON Lines, JSON or CSV",
      got: f.format,
    });
  const raw = f.format === "json" ? await jsonRecords(f.localPath) : await records(f.localPath, f.format);
  return raw.map(({ value, loc }) => {
    const where = { file: loc.file, ...(loc.line !== undefined ? { line: loc.line } : { row: loc.row }) };
    if (!isPlainObject(value))
      throw new HippoError("INVALID_RECORD", "each record must be an object", {
        ...where,
        got: describeValue(value),
      });
    return { record: value, where };
  });
}

/**
 * The rows of one split of a task's dataset, in the order the datasets library concatenates its files, and
 * where they came from (repository, config, revision, the commit read).
 */
export async function fetchSplitRows(
  ds: TaskDataset,
  split: string,
  hub: HubOptions = {},
): Promise<{ rows: DatasetRow[]; source: DatasetSource; file: string }> {
  const { fetchDatasetFiles } = await import("@hippocrates/hub");
  const dataFiles = Array.isArray(ds.dataFiles) ? ds.dataFiles : ds.dataFiles?.[split];
  if (ds.dataFiles !== undefined && dataFiles === undefined)
    throw new HippoError("NOT_FOUND", `dataset_kwargs.data_files names no files for split "${split}"`, {
      key: "dataset.dataset_kwargs.data_files",
      expected: Object.keys(ds.dataFiles).join(", "),
      got: split,
    });
  const got = await fetchDatasetFiles(ds.path, {
    ...hub,
    split,
    revision: ds.revision,
    config: ds.name,
    dataFiles,
  });
  const rows: DatasetRow[] = [];
  for (const f of got.files) rows.push(...(await readFileRows(f)));
  if (rows.length === 0)
    throw new HippoError("INVALID_FORMAT", "no records in the split's data files", {
      file: `dataset ${ds.path}@${got.commit} ${got.config}/${split}`,
      expected: "at least one record",
      got: "none",
    });
  return {
    rows,
    source: {
      repo: got.repo,
      config: got.config,
      split,
      revision: got.revision,
      commit: got.commit,
      files: got.files.map((f) => f.path),
    },
    file: got.files[0]?.localPath ?? got.dir,
  };
}
