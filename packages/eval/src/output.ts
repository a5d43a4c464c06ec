/**
 * lm-evaluation-harness 0.4 output, exactly: the results JSON and the per-task samples JSONL that
 * `lm_eval --output_path DIR --log_samples` writes, read back for shards and reports.
 *
 * Followed (EleutherAI/lm-evaluation-harness 0.4.9.1, pyproject at commit 0064c3a): `evaluator.py`
 * `simple_evaluate`/`evaluate` (commit 034ab03: the samples' keys, `results_dict`, `config`),
 * `evaluator_utils.py` (0064c3a: `consolidate_results`, `consolidate_group_results`, `prepare_print_tasks`,
 * `get_sample_size`), `loggers/evaluation_tracker.py` (034ab03: file names and layout, `task_hashes`,
 * `GeneralConfigTracker`, the samples' `sanitize_list`), `loggers/utils.py` (2300cd1: `add_env_info`,
 * `add_tokenizer_info`), `utils.py` (003e585: `hash_string` = SHA-256, `sanitize_model_name`).
 *
 * Results: per task `{"alias", "acc,none", "acc_stderr,none", ..., "name", "sample_len"}` (a stderr is "N/A"
 * for fewer than two documents; `name` and `sample_len` as the harness's main branch, 0.4.13.dev0, writes them:
 * its CPU regression snapshots `tests/testdata/cpu_regression_expected.json` at 4b0bc04 and
 * `cpu_group_regression_expected.json` at 3207638), a group's size-weighted mean with the pooled standard
 * error and `sample_count` in `results` and `groups`,
 * `group_subtasks`, `configs[task]` (with `metric_list` as `{metric, aggregation, higher_is_better}`),
 * `versions`, `n-shot`, `higher_is_better`, `n-samples` `{original, effective}`, `config`, `git_hash`,
 * `date`, the environment and tokenizer keys, `task_hashes` and the tracker's model and timing keys.
 * Sample rows: `doc_id` (int), `doc`, `target`, `arguments` (`{gen_args_i: {arg_0: context, arg_1:
 * continuation}}`), `resps` / `filtered_resps` (Python `str` of each value, as `sanitize_list` writes them),
 * `filter`, `metrics`, `doc_hash`, `prompt_hash`, `target_hash` and each metric.
 *
 * Our own facts go where the harness keeps free-form data, so its readers are unaffected: the protocol
 * (profile, BOS policy, truncation, seeds, shard) in `config`; the task's source, file and document counts in
 * `configs[task].metadata`; per sample a `hippo` object (task, the document's own id and file row, gold index,
 * few-shot ids, context tokens the model saw, whether the context was truncated).
 */
import { createHash } from "node:crypto";
import { readdir, stat } from "node:fs/promises";
import { basename, dirname, extname, join, resolve } from "node:path";
import {
  describeValue,
  HippoError,
  isPlainObject,
  readJsonFile,
  readJsonlObjects,
  writeFileAtomic,
  writeJsonlAtomic,
} from "@hippocrates/core";
import { mean, meanStderr, pooledStderr } from "./metrics.js";
import { pyIsoDateId, pyJsonDumps, pyStr } from "./pyformat.js";
import type { GroupMetric, MetricName } from "./tasks/types.js";

/** The harness's metric value: a number, or "N/A" where it has none (one document, no stderr). */
export type MetricValue = number | string;

export interface ResultsJson {
  results: Record<string, Record<string, MetricValue>>;
  groups?: Record<string, Record<string, MetricValue>>;
  group_subtasks: Record<string, string[]>;
  configs: Record<string, Record<string, unknown>>;
  versions: Record<string, number | string | null>;
  "n-shot": Record<string, number>;
  higher_is_better: Record<string, Record<string, boolean | null>>;
  "n-samples": Record<string, { original: number; effective: number }>;
  config: Record<string, unknown>;
  git_hash: string | null;
  /** Start of the run, seconds since the epoch (`time.time()`). */
  date: number;
  [key: string]: unknown;
}

/** One scored document, in memory (numbers as numbers); `toHarnessSample` gives the row of a samples file. */
export interface SampleRecord {
  task: string;
  /** Position in evaluation order (after the v0.3 shuffle and the limit): the harness's `doc_id`. */
  position: number;
  /** The document's own id (row index in its file, or PubMedQA's PMID). */
  doc_key: string;
  /** Row of the document in its test file. */
  doc_index: number;
  /** The record as the source file holds it. */
  doc: Record<string, unknown>;
  /** `str(doc_to_target(doc))`: the gold index, or the gold choice's text. */
  target: string;
  /** The prompt (context) string, few-shot examples included. */
  context: string;
  /** The continuations, target delimiter included. */
  continuations: string[];
  /** Ids of the few-shot documents. */
  shots: string[];
  gold: number;
  /** [summed log-probability, is_greedy] per continuation. */
  resps: [number, boolean][];
  acc: number;
  /** Present when the task reports acc_norm. */
  acc_norm?: number;
  /** Context tokens the model saw (after BOS and truncation), per continuation. */
  context_tokens: number[];
  truncated: boolean;
}

export interface EvalOutput {
  results: ResultsJson;
  samples: Record<string, SampleRecord[]>;
}

/** What a task contributes to the results besides its samples. */
export interface TaskMeta {
  name: string;
  /** Display name before group indentation (the harness's `task_alias`, default the name). */
  alias: string;
  version: number | string | null;
  metrics: MetricName[];
  nShot: number;
  original: number;
  effective: number;
  /** `configs[task]`. */
  config: Record<string, unknown>;
}

export interface GroupMeta {
  name: string;
  tasks: string[];
  aggregate: GroupMetric[];
  version: number | string | null;
}

export const hashString = (s: string): string => createHash("sha256").update(s, "utf8").digest("hex");

const STDERR_NA = "N/A";

function metricKey(metric: string, stderr = false): string {
  return `${metric}${stderr ? "_stderr" : ""},none`;
}

/** A task's (or group's) metric from results: `"acc,none"`; null when absent or "N/A". */
export function metricValue(
  results: Pick<ResultsJson, "results">,
  task: string,
  metric: string,
): number | null {
  const v = results.results[task]?.[metricKey(metric)];
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** The row of a samples file (`lm_eval --log_samples`) for one scored document. */
export function toHarnessSample(rec: SampleRecord, metrics: readonly MetricName[]): Record<string, unknown> {
  const args: Record<string, { arg_0: string; arg_1: string }> = {};
  rec.continuations.forEach((c, i) => {
    args[`gen_args_${i}`] = { arg_0: rec.context, arg_1: c };
  });
  const row: Record<string, unknown> = {
    doc_id: rec.position,
    doc: rec.doc,
    target: rec.target,
    arguments: args,
    resps: rec.resps.map(([lp, g]) => [[pyStr(lp), pyStr(g)]]),
    filtered_resps: rec.resps.map(([lp, g]) => [pyStr(lp), pyStr(g)]),
    filter: "none",
    metrics: [...metrics],
    doc_hash: hashString(pyJsonDumps(rec.doc)),
    prompt_hash: hashString(rec.context),
    target_hash: hashString(rec.target),
  };
  for (const m of metrics) row[m] = rec[m];
  row.hippo = {
    task: rec.task,
    doc_key: rec.doc_key,
    doc_index: rec.doc_index,
    gold: rec.gold,
    shots: rec.shots,
    context_tokens: rec.context_tokens,
    truncated: rec.truncated,
  };
  return row;
}

/** The `task_hashes` entry of a task: SHA-256 of its rows' doc, prompt and target hashes, in order. */
export function taskHash(rows: readonly Record<string, unknown>[]): string {
  return hashString(rows.map((r) => `${r.doc_hash}${r.prompt_hash}${r.target_hash}`).join(""));
}

function recordError(file: string, line: number, key: string, expected: string, got: unknown): HippoError {
  return new HippoError("INVALID_RECORD", "not a sample row of an lm-evaluation-harness samples file", {
    file,
    line,
    key,
    expected,
    got: describeValue(got),
  });
}

/** A samples-file row back into a record (validated: a row from an untrusted file). */
export function fromHarnessSample(
  row: Record<string, unknown>,
  task: string,
  file: string,
  line: number,
): SampleRecord {
  const fail = (key: string, expected: string, got: unknown) => recordError(file, line, key, expected, got);
  const docId = row.doc_id;
  if (typeof docId !== "number" || !Number.isInteger(docId) || docId < 0)
    throw fail("doc_id", "an int", docId);
  if (!isPlainObject(row.arguments))
    throw fail("arguments", "{gen_args_0: {arg_0, arg_1}, ...}", row.arguments);
  const args = Object.values(row.arguments);
  const context = isPlainObject(args[0]) ? args[0].arg_0 : undefined;
  if (typeof context !== "string") throw fail("arguments.gen_args_0.arg_0", "the context string", context);
  const continuations = args.map((a, i) => {
    const c = isPlainObject(a) ? a.arg_1 : undefined;
    if (typeof c !== "string") throw fail(`arguments.gen_args_${i}.arg_1`, "a continuation string", c);
    return c;
  });
  const fr = row.filtered_resps;
  if (!Array.isArray(fr) || fr.length !== continuations.length)
    throw fail("filtered_resps", `${continuations.length} [logprob, is_greedy] pairs`, fr);
  const resps = fr.map((x, i): [number, boolean] => {
    const lp = Array.isArray(x) ? Number(x[0]) : Number.NaN;
    const g = Array.isArray(x) ? x[1] : undefined;
    if (!Number.isFinite(lp) || (g !== "True" && g !== "False" && typeof g !== "boolean"))
      throw fail(`filtered_resps[${i}]`, '["<log-likelihood>", "True" | "False"]', x);
    return [lp, g === true || g === "True"];
  });
  const hippo = isPlainObject(row.hippo) ? row.hippo : {};
  const acc = row.acc;
  if (typeof acc !== "number") throw fail("acc", "a number", acc);
  const rec: SampleRecord = {
    task: typeof hippo.task === "string" ? hippo.task : task,
    position: docId,
    doc_key: typeof hippo.doc_key === "string" ? hippo.doc_key : String(docId),
    doc_index: typeof hippo.doc_index === "number" ? hippo.doc_index : docId,
    doc: isPlainObject(row.doc) ? row.doc : {},
    target: String(row.target ?? ""),
    context,
    continuations,
    shots: Array.isArray(hippo.shots) ? hippo.shots.map(String) : [],
    gold: typeof hippo.gold === "number" ? hippo.gold : Number.parseInt(String(row.target), 10),
    resps,
    acc,
    context_tokens: Array.isArray(hippo.context_tokens) ? hippo.context_tokens.map(Number) : [],
    truncated: hippo.truncated === true,
  };
  if (typeof row.acc_norm === "number") rec.acc_norm = row.acc_norm;
  return rec;
}

function taskEntry(meta: TaskMeta, rows: readonly SampleRecord[], alias: string) {
  const entry: Record<string, MetricValue> = { alias };
  for (const metric of meta.metrics) {
    const xs = rows.map((r) => r[metric]).filter((x): x is number => typeof x === "number");
    entry[metricKey(metric)] = xs.length > 0 ? mean(xs) : STDERR_NA;
    entry[metricKey(metric, true)] = xs.length > 1 ? meanStderr(xs) : STDERR_NA;
  }
  entry.name = meta.name;
  entry.sample_len = rows.length;
  return entry;
}

/**
 * The metric sections of a results file from the scored rows: `results`, `groups`, `group_subtasks`,
 * `configs`, `versions`, `n-shot`, `higher_is_better`, `n-samples`, in the harness's key order. A task inside
 * a group is listed under it with its alias indented (" - name"), as `prepare_print_tasks` does; groups
 * aggregate over the members that report each metric (`consolidate_group_results`).
 */
export function aggregateResults(
  tasks: readonly TaskMeta[],
  groups: readonly GroupMeta[],
  samples: Record<string, SampleRecord[]>,
): Pick<
  ResultsJson,
  | "results"
  | "groups"
  | "group_subtasks"
  | "configs"
  | "versions"
  | "n-shot"
  | "higher_is_better"
  | "n-samples"
> {
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const results: Record<string, Record<string, MetricValue>> = {};
  const groupRows: Record<string, Record<string, MetricValue>> = {};
  const nShot: Record<string, number> = {};
  const versions: Record<string, number | string | null> = {};
  const hib: Record<string, Record<string, boolean | null>> = {};
  const inGroup = new Set(groups.flatMap((g) => g.tasks.filter((t) => byName.has(t))));
  const sortByName = <T extends { name: string }>(xs: T[]) =>
    xs.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const top = sortByName([
    ...tasks.filter((t) => !inGroup.has(t.name)).map((t) => ({ name: t.name, group: undefined })),
    ...groups.map((g) => ({ name: g.name, group: g })),
  ]);
  for (const { name, group } of top) {
    if (!group) {
      const meta = byName.get(name) as TaskMeta;
      results[name] = taskEntry(meta, samples[name] ?? [], meta.alias);
      continue;
    }
    const members = group.tasks.map((t) => byName.get(t)).filter((t): t is TaskMeta => t !== undefined);
    const row: Record<string, MetricValue | Record<string, number>> = {};
    const counts: Record<string, number> = {};
    for (const { metric, weightBySize } of group.aggregate) {
      const having = members.filter((m) => m.metrics.includes(metric));
      if (having.length === 0) continue;
      const entries = having.map((m) => taskEntry(m, samples[m.name] ?? [], m.alias));
      const values = entries.map((e) => e[metricKey(metric)]);
      const errs = entries.map((e) => e[metricKey(metric, true)]);
      const sizes = having.map((m) => (samples[m.name] ?? []).length);
      if (!values.every((v) => typeof v === "number")) {
        row[metricKey(metric)] = STDERR_NA;
        row[metricKey(metric, true)] = STDERR_NA;
        continue;
      }
      counts[metricKey(metric)] = sizes.reduce((a, b) => a + b, 0);
      const w = weightBySize ? sizes : sizes.map(() => 1);
      const total = w.reduce((a, b) => a + b, 0);
      row[metricKey(metric)] = (values as number[]).reduce((a, v, i) => a + v * (w[i] as number), 0) / total;
      row[metricKey(metric, true)] = errs.every((e) => typeof e === "number")
        ? pooledStderr(errs as number[], sizes)
        : STDERR_NA;
    }
    row.alias = group.name;
    row.name = group.name;
    row.sample_count = counts;
    row.sample_len = members.reduce((a, m) => a + (samples[m.name] ?? []).length, 0);
    results[name] = row as Record<string, MetricValue>;
    if (group.aggregate.length > 0) groupRows[name] = { ...row } as Record<string, MetricValue>;
    nShot[name] = members[0]?.nShot ?? 0;
    versions[name] = group.version;
    const merged: Record<string, boolean | null> = {};
    for (const m of members) for (const metric of m.metrics) merged[metric] = true;
    hib[name] = merged;
    for (const m of sortByName([...members]))
      results[m.name] = taskEntry(m, samples[m.name] ?? [], ` - ${m.alias}`);
  }
  const sorted = <T>(o: Record<string, T>) =>
    Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const subtasks: Record<string, string[]> = {};
  for (const g of groups) subtasks[g.name] = g.tasks.filter((t) => byName.has(t));
  for (const t of tasks) if (!inGroup.has(t.name)) subtasks[t.name] = [];
  const configs: Record<string, Record<string, unknown>> = {};
  for (const t of tasks) {
    configs[t.name] = t.config;
    versions[t.name] = t.version;
    nShot[t.name] = t.nShot;
    hib[t.name] = Object.fromEntries(t.metrics.map((m) => [m, true]));
  }
  const out: ReturnType<typeof aggregateResults> = {
    results,
    group_subtasks: Object.fromEntries(Object.entries(subtasks).reverse()),
    configs: sorted(configs),
    versions: sorted(versions),
    "n-shot": sorted(nShot),
    higher_is_better: sorted(hib),
    "n-samples": Object.fromEntries(
      tasks.map((t) => [t.name, { original: t.original, effective: t.effective }]),
    ),
  };
  // `groups` only when a group aggregates (`show_group_table`), placed after `results` as the harness does.
  if (Object.keys(groupRows).length > 0) {
    const { results: r, ...rest } = out;
    return { results: r, groups: groupRows, ...rest };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Files.

export interface OutputFiles {
  /** The results JSON. */
  results: string;
  /** The samples JSONL of each task (with `logSamples`). */
  samples: Record<string, string>;
}

async function statOrNull(path: string) {
  try {
    return await stat(path);
  } catch {
    return null;
  }
}

/**
 * Where the tracker writes (`save_results_aggregated` / `save_results_samples`): for a folder,
 * `DIR/<model_name_sanitized>/results_<date>.json` and `samples_<task>_<date>.jsonl` beside it; for a path
 * ending in `.json`, `<stem>_<date>.json` and the samples in its folder. A path that exists as a folder is a
 * folder whatever its name, and a path that is an existing file (not `.json`) is refused: a folder given by
 * the user never becomes a file, and no file is replaced by a folder.
 */
export async function outputFiles(
  outputPath: string,
  modelNameSanitized: string,
  dateId: string,
  tasks: readonly string[],
): Promise<OutputFiles> {
  const p = resolve(outputPath);
  const s = await statOrNull(p);
  const asFile = extname(p) === ".json" && !s?.isDirectory();
  if (s && !s.isDirectory() && !asFile)
    throw new HippoError("INVALID_ARGUMENT", "the output path is a file; expected a folder", {
      file: p,
      key: "output_path",
      expected: "a folder (created if absent) or a path ending in .json",
    });
  const dir = asFile ? dirname(p) : join(p, modelNameSanitized);
  const results = asFile
    ? join(dir, `${basename(p, ".json")}_${dateId}.json`)
    : join(dir, `results_${dateId}.json`);
  const samples = Object.fromEntries(tasks.map((t) => [t, join(dir, `samples_${t}_${dateId}.jsonl`)]));
  return { results, samples };
}

/** The results JSON as the harness dumps it (`json.dumps(indent=2, ensure_ascii=False)`). */
export function resultsText(results: ResultsJson): string {
  return pyJsonDumps(results);
}

/**
 * Write an output as `lm_eval --output_path` (and `--log_samples`) does: each file atomically, the samples
 * first, so that a results file is only ever beside complete samples. `dateId` defaults to now.
 */
export async function writeOutput(
  outputPath: string,
  output: EvalOutput,
  options: { logSamples?: boolean; dateId?: string } = {},
): Promise<OutputFiles> {
  const dateId = options.dateId ?? pyIsoDateId(Date.now());
  const sanitized = String(output.results.model_name_sanitized ?? "");
  const tasks = Object.keys(output.results.configs);
  const files = await outputFiles(outputPath, sanitized, dateId, tasks);
  if (options.logSamples) {
    for (const t of tasks) {
      const metrics = metricList(output.results.configs[t]);
      await writeJsonlAtomic(
        files.samples[t] as string,
        (output.samples[t] ?? []).map((r) => toHarnessSample(r, metrics)),
      );
    }
  } else files.samples = {};
  await writeFileAtomic(files.results, resultsText(output.results));
  return files;
}

function metricList(config: Record<string, unknown> | undefined): MetricName[] {
  const list = Array.isArray(config?.metric_list) ? config.metric_list : [];
  const out = list
    .map((m) => (isPlainObject(m) ? m.metric : m))
    .filter((m): m is MetricName => m === "acc" || m === "acc_norm");
  return out.length > 0 ? out : ["acc"];
}

/** The date id of a results file name (`lm_eval.utils.get_file_datetime`). */
function fileDateId(file: string): string {
  const name = basename(file);
  return name.slice(name.lastIndexOf("_") + 1).replace(/\.json$/, "");
}

async function latestResultsIn(dir: string): Promise<string | undefined> {
  const names = (await readdir(dir)).filter((n) => /^results_.+\.json$/.test(n));
  // The harness picks the latest by the date in the name (`get_latest_filename`).
  names.sort((a, b) => (fileDateId(a) < fileDateId(b) ? -1 : 1));
  const last = names.at(-1);
  return last === undefined ? undefined : join(dir, last);
}

/**
 * The results file an output path names: the file itself, the newest `results_<date>.json` in the folder, or
 * in its one model folder (`DIR/<model_name_sanitized>/`).
 */
export async function findResultsFile(path: string): Promise<string> {
  const p = resolve(path);
  const s = await statOrNull(p);
  if (!s) throw new HippoError("NOT_FOUND", "no such results file or folder", { file: p });
  if (s.isFile()) return p;
  const direct = await latestResultsIn(p);
  if (direct) return direct;
  const found: string[] = [];
  for (const e of await readdir(p, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const f = await latestResultsIn(join(p, e.name));
    if (f) found.push(f);
  }
  if (found.length === 1) return found[0] as string;
  throw new HippoError(
    "NOT_FOUND",
    found.length === 0 ? "no results_<date>.json in the folder" : "several model folders with results",
    {
      file: p,
      expected: "an lm-evaluation-harness output folder (DIR/<model>/results_<date>.json) or a results file",
      got: found.length === 0 ? "none" : found.map((f) => basename(dirname(f))).join(", "),
    },
  );
}

function checkResults(v: unknown, file: string): ResultsJson {
  const need = ["results", "configs", "n-samples", "versions", "n-shot", "config", "group_subtasks"];
  if (!isPlainObject(v) || !need.every((k) => isPlainObject(v[k])))
    throw new HippoError("INVALID_FORMAT", "not an lm-evaluation-harness 0.4 results file", {
      file,
      expected: need.join(", "),
      got: isPlainObject(v) ? Object.keys(v).join(", ") : describeValue(v),
    });
  for (const [task, ns] of Object.entries(v["n-samples"] as Record<string, unknown>)) {
    if (!isPlainObject(ns) || !Number.isInteger(ns.effective) || !Number.isInteger(ns.original))
      throw new HippoError("INVALID_FORMAT", "n-samples must hold {original, effective} integers", {
        file,
        key: `n-samples.${task}`,
        got: describeValue(ns),
      });
  }
  return v as unknown as ResultsJson;
}

/**
 * Read what `writeOutput` (or `lm_eval --output_path ... --log_samples`) wrote: a results file, its folder,
 * or the output folder above it; the samples are the `samples_<task>_<date>.jsonl` beside the results file
 * (a task without one has no samples).
 */
export async function readOutput(path: string): Promise<EvalOutput & { files: OutputFiles }> {
  const file = await findResultsFile(path);
  const results = checkResults(await readJsonFile(file), file);
  const dateId = fileDateId(file);
  const samples: Record<string, SampleRecord[]> = {};
  const files: OutputFiles = { results: file, samples: {} };
  for (const task of Object.keys(results.configs)) {
    const f = join(dirname(file), `samples_${task}_${dateId}.jsonl`);
    if (!(await statOrNull(f))) continue;
    files.samples[task] = f;
    samples[task] = (await readJsonlObjects(f)).map(({ record, line }) =>
      fromHarnessSample(record, task, f, line),
    );
  }
  return { results, samples, files };
}

// ---------------------------------------------------------------------------------------------------------
// Shards.

const TIME_KEYS = ["date", "start_time", "end_time", "total_evaluation_time_seconds", "task_hashes"];

function comparable(r: ResultsJson): string {
  const rest = Object.fromEntries(
    Object.entries(r).filter(([k]) => !["results", "groups"].includes(k) && !TIME_KEYS.includes(k)),
  );
  // The batch size does not change a document's numbers (one model call per document): shards may differ in it.
  return JSON.stringify({ ...rest, config: { ...r.config, shard: null, use_cache: null, batch_size: null } });
}

/** Metas of an output's tasks and groups, as stored in its results (for re-aggregation). */
export function metasOf(results: ResultsJson): { tasks: TaskMeta[]; groups: GroupMeta[] } {
  const tasks: TaskMeta[] = Object.keys(results["n-samples"]).map((name) => {
    const config = results.configs[name] ?? {};
    const alias = String(results.results[name]?.alias ?? name).replace(/^ *- /, "");
    return {
      name,
      alias,
      version: results.versions[name] ?? null,
      metrics: metricList(config),
      nShot: results["n-shot"][name] ?? 0,
      original: results["n-samples"][name]?.original ?? 0,
      effective: results["n-samples"][name]?.effective ?? 0,
      config,
    };
  });
  const groups: GroupMeta[] = Object.entries(results.group_subtasks)
    .filter(([, members]) => Array.isArray(members) && members.length > 0)
    .reverse()
    .map(([name, members]) => ({
      name,
      tasks: members,
      version: results.versions[name] ?? null,
      aggregate: Object.keys(results.groups?.[name] ?? {})
        .filter((k) => k.endsWith(",none") && !k.includes("_stderr"))
        .map((k) => ({ metric: k.slice(0, -",none".length) as MetricName, weightBySize: true })),
    }));
  return { tasks, groups };
}

/**
 * Combine shard outputs into the output of one run: samples back in evaluation order, metrics recomputed.
 * Shards must come from the same configuration (everything but the shard, the batch size and the clock) and
 * cover every document exactly once; the merged output keeps the first shard's batch size and clock.
 */
export function mergeShards(outputs: readonly EvalOutput[]): EvalOutput {
  if (outputs.length === 0) throw new HippoError("INVALID_ARGUMENT", "no shard outputs to merge");
  const first = outputs[0] as EvalOutput;
  for (const [i, o] of outputs.entries()) {
    if (comparable(o.results) !== comparable(first.results))
      throw new HippoError("INVALID_ARGUMENT", "shards come from different configurations", { row: i });
  }
  const { tasks, groups } = metasOf(first.results);
  const samples: Record<string, SampleRecord[]> = {};
  for (const t of tasks) {
    const rows = outputs.flatMap((o) => o.samples[t.name] ?? []).sort((a, b) => a.position - b.position);
    if (rows.length !== t.effective || rows.some((r, i) => r.position !== i)) {
      throw new HippoError(
        "INVALID_ARGUMENT",
        `shards of ${t.name} do not cover every document exactly once`,
        {
          key: t.name,
          expected: `${t.effective} documents`,
          got: String(rows.length),
        },
      );
    }
    samples[t.name] = rows;
  }
  const sections = aggregateResults(tasks, groups, samples);
  const results: ResultsJson = {
    ...first.results,
    ...sections,
    config: { ...first.results.config, shard: null },
  };
  if (!sections.groups) delete results.groups;
  if (Object.keys(first.results.task_hashes ?? {}).length > 0)
    results.task_hashes = taskHashes(tasks, samples);
  return { results, samples };
}

export function taskHashes(
  tasks: readonly Pick<TaskMeta, "name" | "metrics">[],
  samples: Record<string, SampleRecord[]>,
): Record<string, string> {
  return Object.fromEntries(
    tasks.map((t) => [t.name, taskHash((samples[t.name] ?? []).map((r) => toHarnessSample(r, t.metrics)))]),
  );
}
