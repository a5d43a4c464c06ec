import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BUILTIN_TASKS_DIR,
  buildContexts,
  createTaskRegistry,
  defineTask,
  loadTaskFile,
  parseTaskFile,
  readBuiltinTaskFiles,
  type TaskDefinition,
  taskFromSpec,
} from "../src/index.js";
import { DATA_DIR } from "./helpers.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hippo-eval-tasks-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

// The record shape of augtoma/usmle_self_eval_step*: options A..G, absent ones null.
const usmleRows = [
  {
    question: "Which vitamin deficiency causes scurvy?",
    options: { A: "Vitamin A", B: "Vitamin C", C: "Vitamin D", D: "Vitamin K", E: null, F: null, G: null },
    answer: "Vitamin C",
    answer_idx: "B",
  },
  {
    question: "What is the first-line treatment of anaphylaxis?",
    options: {
      A: "Epinephrine",
      B: "Diphenhydramine",
      C: "Prednisone",
      D: "Albuterol",
      E: "Ranitidine",
      F: null,
      G: null,
    },
    answer: "Epinephrine",
    answer_idx: "A",
  },
  {
    question: "Q3?",
    options: { A: "a", B: "b", C: "c", D: null, E: null, F: null, G: null },
    answer: "c",
    answer_idx: "C",
  },
  {
    question: "Q4?",
    options: { A: "w", B: "x", C: "y", D: "z", E: "v", F: "u", G: null },
    answer: "u",
    answer_idx: "F",
  },
  {
    question: "Q5?",
    options: { A: "p", B: "q", C: null, D: null, E: null, F: null, G: null },
    answer: "q",
    answer_idx: "B",
  },
  {
    question: "Q6?",
    options: { A: "m", B: "n", C: "o", D: null, E: null, F: null, G: null },
    answer: "m",
    answer_idx: "A",
  },
  {
    question: "Q7?",
    options: { A: "r", B: "s", C: "t", D: null, E: null, F: null, G: null },
    answer: "t",
    answer_idx: "C",
  },
];

describe("USMLE self-assessment loader (format of augtoma/usmle_self_eval_step*)", () => {
  it("drops null options, keeps the letter order, prompts as medqa", async () => {
    await mkdir(join(dir, "benchmarks/usmle"), { recursive: true });
    await writeFile(
      join(dir, "benchmarks/usmle/usmle_self_eval_step1.jsonl"),
      usmleRows.map((r) => JSON.stringify(r)).join("\n"),
    );
    const task = createTaskRegistry().get("usmle_step1", "v0.3");
    const data = await task.load(dir);
    expect(data.test.map((d) => d.options.length)).toEqual([4, 5, 3, 6, 2, 3, 3]);
    const built = buildContexts(task, data, { profile: "v0.3", numFewshot: 0 });
    const first = built.find((b) => b.docIndex === 0);
    expect(first?.context).toBe(
      "Question: Which vitamin deficiency causes scurvy?\n(A) Vitamin A (B) Vitamin C (C) Vitamin D (D) Vitamin K\nAnswer:",
    );
    expect(first?.continuations).toEqual([" Vitamin A", " Vitamin C", " Vitamin D", " Vitamin K"]);
    expect(first?.gold).toBe(1);
    // 3-shot from the test docs themselves, never the current one.
    const three = buildContexts(task, data, { profile: "v0.3", numFewshot: 3 });
    for (const b of three) {
      expect(b.shotIds).toHaveLength(3);
      expect(b.shotIds).not.toContain(b.doc.id);
    }
  });

  it("an answer letter beyond the options is a clear error", async () => {
    const bad = [
      {
        question: "Q?",
        options: { A: "a", B: "b", C: null, D: null, E: null, F: null, G: null },
        answer_idx: "D",
      },
    ];
    await writeFile(
      join(dir, "benchmarks/usmle/usmle_self_eval_step2.jsonl"),
      `${JSON.stringify(usmleRows[0])}\n${JSON.stringify(bad[0])}\n`,
    );
    const task = createTaskRegistry().get("usmle_step2", "v0.3");
    await expect(task.load(dir)).rejects.toThrow(
      /usmle_self_eval_step2\.jsonl:2, key "answer_idx": answer index out of range \(expected a letter among the 2 options \(A-B\), got D\)/,
    );
  });
});

describe("task definition files", () => {
  it("a user task from JSON: loads, prompts with its template, resolves by name", async () => {
    await writeFile(
      join(dir, "mini.jsonl"),
      [
        { q: "Is water wet?", opts: ["yes", "no"], label: 0, ctx: ["Water is a liquid."] },
        { q: "Is fire cold?", opts: ["yes", "no"], label: 1, ctx: ["Fire is hot.", "Very hot."] },
        { q: "Is ice solid?", opts: ["yes", "no"], label: 0, ctx: ["Ice is frozen water."] },
      ]
        .map((r) => JSON.stringify(r))
        .join("\n"),
    );
    const spec = {
      name: "mini_yn",
      version: 2,
      files: { test: "mini.jsonl" },
      fields: { question: "q", options: "opts", answer: "label", context: "ctx" },
      prompt: { template: "Context: {context}\nQ: {question} {{{options_inline}}}\nA:" },
      choices: "options",
      fewshot: "test",
      metrics: ["acc"],
    };
    await writeFile(join(dir, "mini.task.json"), JSON.stringify(spec));
    const task = await loadTaskFile(join(dir, "mini.task.json"));
    const registry = createTaskRegistry();
    defineTask(task, { registry });
    const t = registry.get("mini_yn", "current");
    const built = buildContexts(t, await t.load("/unused"), { profile: "current", numFewshot: 0 });
    expect(built[1]?.context).toBe("Context: Fire is hot.\nVery hot.\nQ: Is fire cold? {(A) yes (B) no}\nA:");
    expect(built[1]?.continuations).toEqual([" yes", " no"]);
    expect(built[1]?.gold).toBe(1);
  });

  it("bad task files name the file and the key", async () => {
    const f = join(dir, "bad.task.json");
    const base = {
      name: "x",
      files: { test: "mini.jsonl" },
      fields: { question: "q", options: "opts", answer: "label" },
    };
    expect(() => taskFromSpec({ ...base, fields: undefined }, f)).toThrow(
      /bad\.task\.json, key "fields": missing field "fields"/,
    );
    expect(() => taskFromSpec({ ...base, fields: { question: "q", options: "opts" } }, f)).toThrow(
      /key "fields\.answer": missing field "fields\.answer"/,
    );
    expect(() => taskFromSpec({ ...base, files: {} }, f)).toThrow(/key "files\.test"/);
    expect(() => taskFromSpec({ ...base, prompt: { template: "{questoin}" } }, f)).toThrow(
      /unknown placeholder \{questoin\}/,
    );
    expect(() => taskFromSpec({ ...base, fewshot: "random" }, f)).toThrow(
      /key "fewshot": unknown few-shot source/,
    );
    expect(() => taskFromSpec({ ...base, metrics: ["f1"] }, f)).toThrow(/key "metrics"/);
    const escaping = taskFromSpec({ ...base, files: { test: "../../etc/passwd" } }, f);
    await expect(escaping.load(dir)).rejects.toThrow(/must stay inside its root folder/);
    await writeFile(
      join(dir, "oob.jsonl"),
      `${JSON.stringify({ q: "a?", opts: ["x", "y"], label: 0 })}\n${JSON.stringify({ q: "b?", opts: ["x", "y"], label: 2 })}\n`,
    );
    const oob = taskFromSpec({ ...base, files: { test: "oob.jsonl" } }, f);
    await expect(oob.load(dir)).rejects.toThrow(
      /oob\.jsonl:2, key "answer": answer index out of range \(expected 0\.\.1, got 2\)/,
    );
    await writeFile(join(dir, "missing.jsonl"), `${JSON.stringify({ q: "a?", label: 0 })}\n`);
    const missing = taskFromSpec({ ...base, files: { test: "missing.jsonl" } }, f);
    await expect(missing.load(dir)).rejects.toThrow(/missing\.jsonl:1, key "opts": missing field "opts"/);
    await writeFile(join(dir, "notjson.task.json"), "{ nope");
    await expect(loadTaskFile(join(dir, "notjson.task.json"))).rejects.toThrow(
      /notjson\.task\.json: invalid JSON/,
    );
  });

  it("unknown task names list what exists", () => {
    expect(() => createTaskRegistry().get("pubmed", "v0.3")).toThrow(
      /unknown task "pubmed" for profile v0\.3 \(did you mean pubmedqa, .*\?\) \(expected one of hippocrates, /,
    );
  });
});

describe("built-in tasks are task files, read by the same loader as a user's", () => {
  it("every built-in name comes from a file under packages/eval/tasks", () => {
    const entries = readBuiltinTaskFiles();
    const files = entries.map((e) => (e.kind === "task" ? e.task.name : e.group.name));
    expect(files).toEqual(
      expect.arrayContaining(["medqa_usmle", "pubmedqa", "medqa_4options", "multimedqa"]),
    );
    const reg = createTaskRegistry();
    const fromFiles = createTaskRegistry({ builtins: false });
    for (const e of entries) fromFiles.registerEntry(e);
    for (const p of ["v0.3", "current"] as const) expect(fromFiles.names(p)).toEqual(reg.names(p));
    // The variants of the fork come from the v0.3 files' "variants".
    expect(reg.names("v0.3")).toEqual(
      expect.arrayContaining(["medqa_usmle_cot", "pubmedqa_er", "usmle_step3_vot"]),
    );
    expect(reg.names("current")).not.toContain("medqa_usmle_cot");
  });

  it("a copy of a built-in file, loaded as a user's task file, builds the same prompts", async () => {
    const src = join(BUILTIN_TASKS_DIR, "mmlu/mmlu_anatomy.json");
    const copy = JSON.parse(await readFile(src, "utf8"));
    copy.name = "my_anatomy";
    await writeFile(join(dir, "my_anatomy.json"), JSON.stringify(copy));
    const mine = await loadTaskFile(join(dir, "my_anatomy.json"));
    const builtin = createTaskRegistry().get("mmlu_anatomy", "current");
    const opts = { profile: "current", numFewshot: 5, limit: 3 } as const;
    const a = buildContexts(mine, await mine.load(DATA_DIR), opts);
    const b = buildContexts(builtin, await builtin.load(DATA_DIR), opts);
    expect(a.map((x) => [x.context, x.continuations, x.gold])).toEqual(
      b.map((x) => [x.context, x.continuations, x.gold]),
    );
  });

  it("named loaders (lm-evaluation-harness's !function) and group files", async () => {
    const csv = "question,choice0,choice1,choice2,choice3,answer\n  What?  ,w,x,y,z,2\nWhy?,p,q,r,s,B\n";
    await writeFile(join(dir, "quiz_test.csv"), csv);
    await writeFile(join(dir, "quiz_dev.csv"), csv);
    const spec = {
      name: "quiz",
      loader: "mmlu_csv",
      files: { test: "quiz_test.csv", dev: "quiz_dev.csv" },
      prompt: { template: "{question_stripped}\n{options_lines}\nAnswer:" },
      choices: "letters",
      fewshot: "dev_first_k",
      metrics: ["acc"],
    };
    const reg = createTaskRegistry();
    reg.registerEntry(parseTaskFile(spec, join(dir, "quiz.json")));
    reg.registerEntry(
      parseTaskFile({ group: "quizzes", task: ["quiz", "mmlu_anatomy"] }, join(dir, "g.json")),
    );
    const { tasks, groups } = reg.resolve(["quizzes"], "current");
    expect(tasks.map((t) => t.name)).toEqual(["quiz", "mmlu_anatomy"]);
    expect(groups.map((g) => g.name)).toEqual(["quizzes"]);
    const [q] = buildContexts(tasks[0] as TaskDefinition, await (tasks[0] as TaskDefinition).load(dir), {
      profile: "current",
      numFewshot: 0,
    });
    expect(q?.context).toBe("What?\nA. w\nB. x\nC. y\nD. z\nAnswer:");
    expect(q?.gold).toBe(2);
  });

  it("unknown keys and loaders get a did-you-mean", () => {
    const f = join(dir, "typo.json");
    const base = {
      name: "t",
      files: { test: "x.jsonl" },
      fields: { question: "q", options: "o", answer: "a" },
    };
    expect(() => parseTaskFile({ ...base, fewshoot: "train" }, f)).toThrow(
      /typo\.json, key "fewshoot": unknown key "fewshoot"; did you mean "fewshot"\?/,
    );
    expect(() => parseTaskFile({ ...base, loader: "mmlu_cvs" }, f)).toThrow(
      /key "loader": unknown loader "mmlu_cvs"; did you mean "mmlu_csv"\?/,
    );
    expect(() => parseTaskFile({ group: "g", task: ["a"], aggregate_metric_lst: [] }, f)).toThrow(
      /did you mean "aggregate_metric_list"\?/,
    );
  });
});
