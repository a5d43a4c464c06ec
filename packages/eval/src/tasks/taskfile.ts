/**
 * Task files: the one format for tasks, the built-in ones (`packages/eval/tasks/*.json`, shipped with the
 * package) and a user's. A file holds one task (or one group, below) as JSON, e.g.
 *
 *   { "name": "my_mcq", "version": 0,
 *     "files": { "test": "my_mcq_test.jsonl", "train": "my_mcq_train.jsonl" },
 *     "fields": { "question": "question", "options": "options", "answer": "answer_idx" },
 *     "prompt": "v0.3", "choices": "options", "fewshot": "train", "metrics": ["acc", "acc_norm"] }
 *
 * - files: JSONL (one object per line) or `.csv` (header row); paths are relative to the task file's folder,
 *   or to the data dir with `"root": "dataDir"`; they may not leave that folder.
 * - fields.options: an object of lettered options (null ones dropped) or an array of strings; for CSV a
 *   list of column names. fields.answer: an index, a letter, or (with fixed choices) the label text.
 * - fields.context (optional): a string or an array of strings, joined with "\n" as `{context}`.
 * - loader (instead of fields): a named loader for a published format (`TASK_LOADERS` in `loaders.ts`: medqa,
 *   usmle, medmcqa, pubmedqa_pqal, pubmedqa_test500, pubmedqa_fold0, mmlu_csv), as lm-evaluation-harness's
 *   `!function`; `files` then holds the keys that loader reads.
 * - prompt: "v0.3" (`Question: {question}\n{options_inline}\nAnswer:`), "letters" (`{question}\n{options_lines}\nAnswer:`),
 *   or { "template": "..." } with {question}, {question_stripped} (Python's `question.strip()`),
 *   {options_inline} ("(A) a (B) b"), {options_lines} ("A. a\nB. b"), {context}; write {{ and }} for braces.
 * - choices: "options" (the option texts), "letters" (A, B, ...), or a fixed list such as ["yes", "no", "maybe"].
 * - fewshot: "train", "test" or "dev_first_k"; metrics: acc, acc_norm; description; target_delimiter (" ").
 * - target: what a samples file's `target` holds, "index" (default) or "text"; doc_key: "id" to compare
 *   documents by their id when dropping the current one from a few-shot draw (default: prompt and choices).
 * - profiles: the profiles the name resolves in (default both); variants: the authors' prompting variants
 *   registered as `<name>_<variant>` (cot, sc, vot, er); source and dataset (lm-evaluation-harness's
 *   `dataset_path`, `dataset_name`, `*_split` keys): provenance, written to the results' `configs`.
 *
 * A group file: { "group": "multimedqa", "task": ["pubmedqa", {"task": "mmlu_anatomy", "task_alias": "anatomy
 * (mmlu)"}], "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": true}],
 * "version": 1, "profiles": ["current"] } (the shape of the harness's group YAML). Without
 * `aggregate_metric_list` a group reports acc and acc_norm weighted by size (the harness would report none).
 */
import { dirname, isAbsolute, relative, resolve } from "node:path";
import {
  describeValue,
  HippoError,
  isPlainObject,
  pathExists,
  readJsonFile,
  readJsonlObjects,
  readTextFile,
  unknownNameMessage,
} from "@hippocrates/core";
import { parseCsv } from "../readers.js";
import { fetchSplitRows, fewshotSplitOf, parseTaskDataset, type TaskDataset } from "./hub.js";
import {
  checkIndex,
  LETTERS,
  letterToIndex,
  noDocuments,
  type SourceRecord,
  TASK_LOADERS,
} from "./loaders.js";
import type {
  EvalDoc,
  FewshotSource,
  GroupMetric,
  MetricName,
  TaskData,
  TaskDefinition,
  TaskGroup,
  TaskLoadOptions,
} from "./types.js";
import { PROMPT_VARIANTS, type PromptVariant } from "./variants.js";

export type Profile = "v0.3" | "current";
export const PROFILES: readonly Profile[] = ["v0.3", "current"];

const PLACEHOLDERS = new Set(["question", "question_stripped", "options_inline", "options_lines", "context"]);

function fail(file: string, key: string, reason: string, expected?: string, got?: string): never {
  throw new HippoError("INVALID_CONFIG", reason, { file, key, expected, got });
}

/** Compile `{name}` templates once; unknown names are an error at load time, not at run time. */
export function compileTemplate(
  template: string,
  file = "<template>",
): (vars: Record<string, string>) => string {
  const parts: ({ text: string } | { name: string })[] = [];
  let i = 0;
  let text = "";
  while (i < template.length) {
    const c = template[i];
    if ((c === "{" || c === "}") && template[i + 1] === c) {
      text += c;
      i += 2;
    } else if (c === "{") {
      const end = template.indexOf("}", i);
      const name = end < 0 ? "" : template.slice(i + 1, end);
      if (!PLACEHOLDERS.has(name))
        fail(
          file,
          "prompt.template",
          `unknown placeholder {${name}}`,
          [...PLACEHOLDERS].map((p) => `{${p}}`).join(", "),
          name,
        );
      if (text) parts.push({ text });
      text = "";
      parts.push({ name });
      i = end + 1;
    } else if (c === "}") {
      fail(file, "prompt.template", "unmatched '}' (write }} for a literal brace)");
    } else {
      text += c;
      i++;
    }
  }
  if (text) parts.push({ text });
  return (vars) => parts.map((p) => ("text" in p ? p.text : (vars[p.name] ?? ""))).join("");
}

interface FieldSpec {
  question: string;
  options: string | string[];
  answer: string;
  context?: string;
}

function safePath(base: string, rel: unknown, file: string, key: string): string {
  if (typeof rel !== "string" || rel === "")
    fail(file, key, "must be a relative file path", "string", describeValue(rel));
  const p = resolve(base, rel as string);
  const r = relative(base, p);
  if (isAbsolute(rel as string) || r.startsWith("..") || isAbsolute(r)) {
    throw new HippoError("UNSAFE_PATH", "data file path must stay inside its root folder", {
      file,
      key,
      got: rel as string,
    });
  }
  return p;
}

async function loadRecords(
  path: string,
  fields: FieldSpec,
  choices: string[] | "options" | "letters",
  taskFile: string,
): Promise<EvalDoc[]> {
  if (path.endsWith(".csv")) {
    const rows = parseCsv(await readTextFile(path), path);
    const header = rows[0] ?? [];
    const col = (name: string, key: string) => {
      const i = header.indexOf(name);
      if (i < 0)
        fail(taskFile, key, `column "${name}" not in the CSV header of ${path}`, name, header.join(","));
      return i;
    };
    if (!Array.isArray(fields.options))
      fail(taskFile, "fields.options", "for CSV files, options must be a list of column names");
    const qi = col(fields.question, "fields.question");
    const oi = (fields.options as string[]).map((o) => col(o, "fields.options"));
    const ai = col(fields.answer, "fields.answer");
    const ctxi = fields.context === undefined ? -1 : col(fields.context, "fields.context");
    const docs = rows
      .slice(1)
      .filter((r) => !(r.length === 1 && r[0] === ""))
      .map((r, row) => {
        const rec: Record<string, unknown> = {
          q: r[qi],
          opts: oi.map((i) => r[i]),
          ans: r[ai],
          ctx: ctxi >= 0 ? r[ctxi] : undefined,
        };
        const a = String(rec.ans).trim();
        return toDoc(String(row), rec.q, rec.opts, /^\d+$/.test(a) ? Number(a) : a, rec.ctx, choices, {
          file: path,
          row: row + 1,
        });
      });
    if (docs.length === 0) throw noDocuments(path);
    return docs;
  }
  const records = await readJsonlObjects(path);
  if (records.length === 0) throw noDocuments(path);
  return fieldDocs(
    records.map(({ line, record }) => ({ record, where: { file: path, line } })),
    fields,
    choices,
  );
}

/** Records (a JSONL file's, or a Hub split's rows) as documents through the task file's `fields`. */
function fieldDocs(
  records: readonly SourceRecord[],
  fields: FieldSpec,
  choices: string[] | "options" | "letters",
): EvalDoc[] {
  return records.map(({ record, where }, i) => {
    for (const k of [
      fields.question,
      fields.answer,
      ...(typeof fields.options === "string" ? [fields.options] : []),
    ]) {
      if (!(k in record))
        throw new HippoError("INVALID_RECORD", `missing field "${k}"`, { ...where, key: k });
    }
    const opts =
      typeof fields.options === "string" ? record[fields.options] : fields.options.map((k) => record[k]);
    const ctx = fields.context === undefined ? undefined : record[fields.context];
    const doc = toDoc(
      String(record.id ?? i),
      record[fields.question],
      opts,
      record[fields.answer],
      ctx,
      choices,
      where,
    );
    doc.raw = record;
    return doc;
  });
}

function toDoc(
  id: string,
  question: unknown,
  rawOptions: unknown,
  answer: unknown,
  context: unknown,
  choices: string[] | "options" | "letters",
  where: { file: string; line?: number; row?: number },
): EvalDoc {
  if (typeof question !== "string")
    throw new HippoError("INVALID_RECORD", "question must be a string", {
      ...where,
      key: "question",
      got: describeValue(question),
    });
  let options: string[] = [];
  if (Array.isArray(rawOptions)) options = rawOptions.filter((o) => o !== null) as string[];
  else if (isPlainObject(rawOptions))
    options = Object.values(rawOptions).filter((o) => o !== null) as string[];
  else if (rawOptions !== undefined)
    throw new HippoError("INVALID_RECORD", "options must be an array or an object", {
      ...where,
      key: "options",
      got: describeValue(rawOptions),
    });
  if (!options.every((o) => typeof o === "string"))
    throw new HippoError("INVALID_RECORD", "every option must be a string", { ...where, key: "options" });
  const n = Array.isArray(choices) ? choices.length : options.length;
  if (n < 2)
    throw new HippoError("INVALID_RECORD", "a question needs at least two choices", {
      ...where,
      key: "options",
      got: String(n),
    });
  let gold: number;
  if (typeof answer === "number") gold = checkIndex(answer, n, { ...where, key: "answer" });
  else if (Array.isArray(choices) && typeof answer === "string" && choices.includes(answer))
    gold = choices.indexOf(answer);
  else gold = letterToIndex(answer, n, { ...where, key: "answer" });
  let contexts: string[] | undefined;
  if (typeof context === "string") contexts = [context];
  else if (Array.isArray(context) && context.every((c) => typeof c === "string"))
    contexts = context as string[];
  else if (context !== undefined)
    throw new HippoError("INVALID_RECORD", "context must be a string or a list of strings", {
      ...where,
      key: "context",
    });
  const doc: EvalDoc = { id, question, options: Array.isArray(choices) ? choices.slice() : options, gold };
  if (contexts) doc.contexts = contexts;
  return doc;
}

const TASK_KEYS = [
  "name",
  "version",
  "profiles",
  "loader",
  "files",
  "fields",
  "root",
  "prompt",
  "choices",
  "fewshot",
  "metrics",
  "description",
  "target_delimiter",
  "target",
  "doc_key",
  "variants",
  "source",
  "dataset",
] as const;
const GROUP_KEYS = ["group", "task", "aggregate_metric_list", "version", "profiles"] as const;

/** A parsed task file: a task or a group, with the profiles its name resolves in. */
export type TaskFileEntry =
  | { kind: "task"; task: TaskDefinition; profiles: Profile[]; variants: PromptVariant[] }
  | { kind: "group"; group: TaskGroup; profiles: Profile[] };

function checkKeys(s: Record<string, unknown>, allowed: readonly string[], file: string): void {
  for (const k of Object.keys(s))
    if (!allowed.includes(k)) fail(file, k, unknownNameMessage("key", k, allowed), allowed.join(", "));
}

function parseProfiles(v: unknown, file: string): Profile[] {
  if (v === undefined) return [...PROFILES];
  if (!Array.isArray(v) || v.length === 0 || !v.every((p) => PROFILES.includes(p as Profile)))
    fail(file, "profiles", "profiles must be a non-empty list of v0.3, current", undefined, describeValue(v));
  return v as Profile[];
}

function parseMetrics(v: unknown, file: string): MetricName[] {
  const metrics = v ?? ["acc", "acc_norm"];
  if (
    !Array.isArray(metrics) ||
    metrics.length === 0 ||
    !metrics.every((m) => m === "acc" || m === "acc_norm")
  )
    fail(file, "metrics", "metrics must be a list of acc, acc_norm");
  return metrics as MetricName[];
}

/** Build a task or a group from a parsed task file (`file` names it in errors). */
export function parseTaskFile(spec: unknown, file: string, opts: { dataDir?: string } = {}): TaskFileEntry {
  if (!isPlainObject(spec))
    fail(file, "", "a task file must hold a JSON object", "object", describeValue(spec));
  if (spec.group !== undefined) return parseGroup(spec, file);
  const variants = spec.variants ?? [];
  if (!Array.isArray(variants) || !variants.every((v) => PROMPT_VARIANTS.includes(v as PromptVariant)))
    fail(file, "variants", "variants must be a list of cot, sc, vot, er", undefined, describeValue(variants));
  return {
    kind: "task",
    task: taskFromSpec(spec, file, opts),
    profiles: parseProfiles(spec.profiles, file),
    variants: variants as PromptVariant[],
  };
}

function parseGroup(s: Record<string, unknown>, file: string): TaskFileEntry {
  checkKeys(s, GROUP_KEYS, file);
  const name = s.group;
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]+$/.test(name))
    fail(file, "group", "group must be letters, digits, _ . -", undefined, describeValue(name));
  if (!Array.isArray(s.task) || s.task.length === 0)
    fail(file, "task", "a group needs a non-empty task list");
  const tasks: string[] = [];
  const aliases: Record<string, string> = {};
  for (const [i, t] of (s.task as unknown[]).entries()) {
    if (typeof t === "string") tasks.push(t);
    else if (isPlainObject(t) && typeof t.task === "string") {
      tasks.push(t.task);
      if (typeof t.task_alias === "string") aliases[t.task] = t.task_alias;
    } else
      fail(
        file,
        `task[${i}]`,
        "a group member is a task name or {task, task_alias}",
        undefined,
        describeValue(t),
      );
  }
  let aggregate: GroupMetric[] | undefined;
  if (s.aggregate_metric_list !== undefined) {
    if (!Array.isArray(s.aggregate_metric_list))
      fail(file, "aggregate_metric_list", "aggregate_metric_list must be a list");
    aggregate = (s.aggregate_metric_list as unknown[]).map((m, i) => {
      const key = `aggregate_metric_list[${i}]`;
      if (!isPlainObject(m) || (m.metric !== "acc" && m.metric !== "acc_norm"))
        fail(file, key, "metric must be acc or acc_norm", undefined, describeValue(m));
      if (m.aggregation !== undefined && m.aggregation !== "mean")
        fail(
          file,
          `${key}.aggregation`,
          'only "mean" aggregates a group',
          "mean",
          describeValue(m.aggregation),
        );
      return { metric: m.metric as MetricName, weightBySize: m.weight_by_size !== false };
    });
  }
  const version = s.version ?? 0;
  if (typeof version !== "number" || !Number.isFinite(version))
    fail(file, "version", "version must be a number", undefined, describeValue(version));
  const group: TaskGroup = { name: name as string, tasks, aliases, version: version as number };
  if (aggregate) group.aggregate = aggregate;
  return { kind: "group", group, profiles: parseProfiles(s.profiles, file) };
}

/** Build a task from a parsed task-definition object (`file` names it in errors). */
export function taskFromSpec(spec: unknown, file: string, opts: { dataDir?: string } = {}): TaskDefinition {
  if (!isPlainObject(spec))
    fail(file, "", "a task file must hold a JSON object", "object", describeValue(spec));
  const s = spec as Record<string, unknown>;
  checkKeys(s, TASK_KEYS, file);
  const loaderName = s.loader;
  const loader = loaderName === undefined ? undefined : TASK_LOADERS[loaderName as string];
  if (loaderName !== undefined && !loader)
    fail(
      file,
      "loader",
      unknownNameMessage("loader", String(loaderName), Object.keys(TASK_LOADERS)),
      Object.keys(TASK_LOADERS).join(", "),
    );
  const dataset = parseTaskDataset(s.dataset, file);
  if (loader && dataset && !loader.rows)
    fail(
      file,
      "dataset",
      `loader ${String(loaderName)} reads local files only; it cannot read a Hub dataset`,
      "no dataset key",
    );
  // Documents come from files (`files`) or from a Hub dataset (`dataset`), or either (the built-ins).
  for (const k of loader ? ["name"] : ["name", "fields"])
    if (s[k] === undefined) fail(file, k, `missing field "${k}"`);
  if (s.files === undefined && !dataset)
    fail(file, "files", 'missing field "files" (or a "dataset" with the Hub dataset\'s dataset_path)');
  const name = s.name;
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]+$/.test(name))
    fail(file, "name", "name must be letters, digits, _ . -", undefined, describeValue(name));
  const version = s.version ?? 0;
  if (!Number.isInteger(version))
    fail(file, "version", "version must be an integer", undefined, describeValue(version));
  const files = s.files ?? {};
  if (!isPlainObject(files)) fail(file, "files", "files must be an object of file paths");
  const fileEntries = files as Record<string, unknown>;
  const hasFiles = s.files !== undefined;
  if (loader && hasFiles) {
    const known = loader.files.map((k) => k.replace(/\?$/, ""));
    for (const k of Object.keys(fileEntries))
      if (!known.includes(k))
        fail(
          file,
          `files.${k}`,
          unknownNameMessage(`file key for loader ${loaderName}`, k, known),
          known.join(", "),
        );
    for (const k of loader.files)
      if (!k.endsWith("?") && fileEntries[k] === undefined)
        fail(file, `files.${k}`, `missing field "files.${k}"`);
  } else if (hasFiles && fileEntries.test === undefined)
    fail(file, "files.test", 'missing field "files.test"');
  let f: FieldSpec | undefined;
  if (!loader) {
    const fields = s.fields;
    if (!isPlainObject(fields)) fail(file, "fields", "fields must be an object");
    for (const k of ["question", "answer"])
      if (typeof (fields as Record<string, unknown>)[k] !== "string")
        fail(file, `fields.${k}`, `missing field "fields.${k}"`);
    f = fields as unknown as FieldSpec;
  }
  const choicesSpec = s.choices ?? "options";
  if (
    !(
      choicesSpec === "options" ||
      choicesSpec === "letters" ||
      (Array.isArray(choicesSpec) &&
        choicesSpec.length >= 2 &&
        choicesSpec.every((c) => typeof c === "string"))
    )
  ) {
    fail(
      file,
      "choices",
      'choices must be "options", "letters" or a list of strings',
      undefined,
      describeValue(choicesSpec),
    );
  }
  if (f && !Array.isArray(choicesSpec) && f.options === undefined)
    fail(file, "fields.options", 'missing field "fields.options"');
  const fewshot = (s.fewshot ?? "test") as FewshotSource;
  if (!["train", "test", "dev_first_k"].includes(fewshot))
    fail(file, "fewshot", "unknown few-shot source", "train, test or dev_first_k", String(fewshot));
  if (!loader && hasFiles && fewshot === "train" && fileEntries.train === undefined)
    fail(file, "files.train", 'fewshot "train" needs files.train');
  if (!loader && hasFiles && fewshot === "dev_first_k" && fileEntries.dev === undefined)
    fail(file, "files.dev", 'fewshot "dev_first_k" needs files.dev');
  if (dataset && fewshot !== "test" && fewshotSplitOf(dataset, fewshot) === undefined)
    fail(
      file,
      "dataset.fewshot_split",
      `fewshot "${fewshot}" needs the split its examples come from`,
      fewshot === "train" ? "fewshot_split or training_split" : "fewshot_split or validation_split",
    );
  const metrics = parseMetrics(s.metrics, file);
  const prompt = s.prompt ?? "v0.3";
  let template: string;
  if (prompt === "v0.3") template = "Question: {question}\n{options_inline}\nAnswer:";
  else if (prompt === "letters") template = "{question}\n{options_lines}\nAnswer:";
  else if (isPlainObject(prompt) && typeof prompt.template === "string") template = prompt.template;
  else
    fail(
      file,
      "prompt",
      'prompt must be "v0.3", "letters" or {"template": "..."}',
      undefined,
      describeValue(prompt),
    );
  const render = compileTemplate(template, file);
  const description = s.description ?? "";
  if (typeof description !== "string") fail(file, "description", "description must be a string");
  const delimiter = s.target_delimiter ?? " ";
  if (typeof delimiter !== "string") fail(file, "target_delimiter", "target_delimiter must be a string");
  const root = s.root === "dataDir" ? "dataDir" : "file";
  if (s.root !== undefined && s.root !== "dataDir" && s.root !== "file")
    fail(file, "root", 'root must be "file" or "dataDir"', undefined, describeValue(s.root));
  const target = s.target ?? "index";
  if (target !== "index" && target !== "text")
    fail(file, "target", 'target must be "index" or "text"', undefined, describeValue(target));
  if (s.doc_key !== undefined && s.doc_key !== "id")
    fail(file, "doc_key", 'doc_key must be "id"', undefined, describeValue(s.doc_key));
  if (s.source !== undefined && typeof s.source !== "string") fail(file, "source", "source must be a string");
  const choices = choicesSpec as string[] | "options" | "letters";
  const fromRows = (records: readonly SourceRecord[]): EvalDoc[] =>
    loader?.rows ? loader.rows(records) : fieldDocs(records, f as FieldSpec, choices);

  const task: TaskDefinition = {
    name: name as string,
    version: version as number,
    async load(dataDir: string | undefined, loadOptions: TaskLoadOptions = {}): Promise<TaskData> {
      const folder = root === "dataDir" ? (opts.dataDir ?? dataDir) : dirname(resolve(file));
      // A data folder, when given, wins (local copies); without one a task with a Hub dataset reads it.
      if (!hasFiles || folder === undefined) {
        if (dataset) return loadFromHub(dataset, fewshot, fromRows, loadOptions);
        throw new HippoError(
          "INVALID_ARGUMENT",
          `task ${String(name)} reads its files from a data folder and names no Hub dataset: give the folder (hippo eval --data-dir, the eval stage's data_dir)`,
          { file, key: "dataDir", expected: "a folder laid out as ../shared/data" },
        );
      }
      const base = resolve(folder);
      if (loader) {
        const present: Record<string, string> = {};
        const missing: Record<string, string> = {};
        for (const key of loader.files) {
          const k = key.replace(/\?$/, "");
          if (fileEntries[k] === undefined) continue;
          const path = safePath(base, fileEntries[k], file, `files.${k}`);
          if (key.endsWith("?") && !(await pathExists(path))) missing[k] = path;
          else present[k] = path;
        }
        return loader.load(present, missing);
      }
      const spec = f as FieldSpec;
      const testPath = safePath(base, fileEntries.test, file, "files.test");
      const data: TaskData = {
        test: await loadRecords(testPath, spec, choices, file),
        files: { test: testPath },
      };
      for (const split of ["train", "dev"] as const) {
        if (fileEntries[split] === undefined) continue;
        const path = safePath(base, fileEntries[split], file, `files.${split}`);
        data[split] = await loadRecords(path, spec, choices, file);
        data.files = { ...data.files, [split]: path };
      }
      return data;
    },
    docToText: (doc) =>
      render({
        question: doc.question,
        question_stripped: pyStrip(doc.question),
        options_inline: doc.options.map((o, i) => `(${LETTERS[i]}) ${o}`).join(" "),
        options_lines: doc.options.map((o, i) => `${LETTERS[i]}. ${o}`).join("\n"),
        context: (doc.contexts ?? []).join("\n"),
      }),
    docToChoices:
      choices === "letters" ? (doc) => doc.options.map((_, i) => LETTERS[i] as string) : (doc) => doc.options,
    targetDelimiter: delimiter as string,
    description: description as string,
    fewshot,
    metrics,
    source: (s.source as string | undefined) ?? `task file ${file}`,
    target: target as "index" | "text",
    harnessConfig: {
      ...(isPlainObject(s.dataset) ? s.dataset : {}),
      doc_to_text: template,
      doc_to_choice: Array.isArray(choices) ? choices : choices === "letters" ? "letters" : "options",
    },
  };
  if (s.doc_key === "id") task.docKey = (doc) => doc.id;
  return task;
}

/**
 * A task's documents from its Hub dataset: the evaluated split, and the few-shot split when few-shot examples
 * are wanted (`numFewshot` > 0, or not given), each with the repository, revision and commit it was read at.
 */
async function loadFromHub(
  dataset: TaskDataset,
  fewshot: FewshotSource,
  fromRows: (records: readonly SourceRecord[]) => EvalDoc[],
  options: TaskLoadOptions,
): Promise<TaskData> {
  const test = await fetchSplitRows(dataset, dataset.evalSplit, options.hub);
  const data: TaskData = {
    test: fromRows(test.rows),
    files: { test: test.file },
    sources: { test: test.source },
  };
  const k = options.numFewshot;
  if (fewshot === "test" || k === 0) return data;
  const split = fewshotSplitOf(dataset, fewshot) as string;
  const got = split === dataset.evalSplit ? test : await fetchSplitRows(dataset, split, options.hub);
  const key = fewshot === "train" ? "train" : "dev";
  data[key] = fromRows(got.rows);
  data.files = { ...data.files, [key]: got.file };
  data.sources = { ...data.sources, [key]: got.source };
  return data;
}

/** Python's `str.strip()` (whitespace as `str.isspace`), for the harness's `question.strip()`. */
const PY_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
  0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && PY_SPACE.has(s.charCodeAt(a))) a++;
  while (b > a && PY_SPACE.has(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** Read, validate and build a task from a JSON task-definition file. */
export async function loadTaskFile(path: string, opts: { dataDir?: string } = {}): Promise<TaskDefinition> {
  const entry = parseTaskFile(await readJsonFile(path), path, opts);
  if (entry.kind !== "task")
    throw new HippoError("INVALID_CONFIG", "this is a group file; give its tasks by name", {
      file: path,
      key: "group",
    });
  return entry.task;
}
