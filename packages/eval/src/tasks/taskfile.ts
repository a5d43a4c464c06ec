/**
 * Task definition files: a user adds a benchmark without touching the package by writing JSON such as
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
 * - prompt: "v0.3" (`Question: {question}\n{options_inline}\nAnswer:`), "letters" (`{question}\n{options_lines}\nAnswer:`),
 *   or { "template": "..." } with {question}, {options_inline} ("(A) a (B) b"), {options_lines} ("A. a\nB. b"),
 *   {context}; write {{ and }} for literal braces.
 * - choices: "options" (the option texts), "letters" (A, B, ...), or a fixed list such as ["yes", "no", "maybe"].
 */
import { dirname, isAbsolute, relative, resolve } from "node:path";
import {
  describeValue,
  HippoError,
  isPlainObject,
  readJsonFile,
  readJsonlObjects,
  readTextFile,
} from "@hippocrates/core";
import { parseCsv } from "../readers.js";
import { checkIndex, LETTERS, letterToIndex } from "./loaders.js";
import type { EvalDoc, FewshotSource, MetricName, TaskData, TaskDefinition } from "./types.js";

const PLACEHOLDERS = new Set(["question", "options_inline", "options_lines", "context"]);

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
    return rows
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
  }
  const records = await readJsonlObjects(path);
  return records.map(({ line, record }, i) => {
    for (const k of [
      fields.question,
      fields.answer,
      ...(typeof fields.options === "string" ? [fields.options] : []),
    ]) {
      if (!(k in record))
        throw new HippoError("INVALID_RECORD", `missing field "${k}"`, { file: path, line, key: k });
    }
    const opts =
      typeof fields.options === "string" ? record[fields.options] : fields.options.map((k) => record[k]);
    const ctx = fields.context === undefined ? undefined : record[fields.context];
    return toDoc(String(record.id ?? i), record[fields.question], opts, record[fields.answer], ctx, choices, {
      file: path,
      line,
    });
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

/** Build a task from a parsed task-definition object (`file` names it in errors). */
export function taskFromSpec(spec: unknown, file: string, opts: { dataDir?: string } = {}): TaskDefinition {
  if (!isPlainObject(spec))
    fail(file, "", "a task file must hold a JSON object", "object", describeValue(spec));
  const s = spec as Record<string, unknown>;
  for (const k of ["name", "files", "fields"]) if (s[k] === undefined) fail(file, k, `missing field "${k}"`);
  const name = s.name;
  if (typeof name !== "string" || !/^[A-Za-z0-9_.-]+$/.test(name))
    fail(file, "name", "name must be letters, digits, _ . -", undefined, describeValue(name));
  const version = s.version ?? 0;
  if (!Number.isInteger(version))
    fail(file, "version", "version must be an integer", undefined, describeValue(version));
  const files = s.files;
  if (!isPlainObject(files) || files.test === undefined)
    fail(file, "files.test", 'missing field "files.test"');
  const fields = s.fields;
  if (!isPlainObject(fields)) fail(file, "fields", "fields must be an object");
  for (const k of ["question", "answer"])
    if (typeof (fields as Record<string, unknown>)[k] !== "string")
      fail(file, `fields.${k}`, `missing field "fields.${k}"`);
  const f = fields as unknown as FieldSpec;
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
  if (!Array.isArray(choicesSpec) && f.options === undefined)
    fail(file, "fields.options", 'missing field "fields.options"');
  const fewshot = (s.fewshot ?? "test") as FewshotSource;
  if (!["train", "test", "dev_first_k"].includes(fewshot))
    fail(file, "fewshot", "unknown few-shot source", "train, test or dev_first_k", String(fewshot));
  if (fewshot === "train" && (files as Record<string, unknown>).train === undefined)
    fail(file, "files.train", 'fewshot "train" needs files.train');
  if (fewshot === "dev_first_k" && (files as Record<string, unknown>).dev === undefined)
    fail(file, "files.dev", 'fewshot "dev_first_k" needs files.dev');
  const metrics = (s.metrics ?? ["acc", "acc_norm"]) as MetricName[];
  if (
    !Array.isArray(metrics) ||
    metrics.length === 0 ||
    !metrics.every((m) => m === "acc" || m === "acc_norm")
  )
    fail(file, "metrics", "metrics must be a list of acc, acc_norm");
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
  const choices = choicesSpec as string[] | "options" | "letters";
  const fileEntries = files as Record<string, unknown>;

  return {
    name: name as string,
    version: version as number,
    async load(dataDir: string): Promise<TaskData> {
      const base = root === "dataDir" ? resolve(opts.dataDir ?? dataDir) : dirname(resolve(file));
      const data: TaskData = {
        test: await loadRecords(safePath(base, fileEntries.test, file, "files.test"), f, choices, file),
      };
      if (fileEntries.train !== undefined)
        data.train = await loadRecords(
          safePath(base, fileEntries.train, file, "files.train"),
          f,
          choices,
          file,
        );
      if (fileEntries.dev !== undefined)
        data.dev = await loadRecords(safePath(base, fileEntries.dev, file, "files.dev"), f, choices, file);
      return data;
    },
    docToText: (doc) =>
      render({
        question: doc.question,
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
    source: `task file ${file}`,
  };
}

/** Read, validate and build a task from a JSON task-definition file. */
export async function loadTaskFile(path: string, opts: { dataDir?: string } = {}): Promise<TaskDefinition> {
  return taskFromSpec(await readJsonFile(path), path, opts);
}
