/**
 * Bad input never turns into numbers: an empty benchmark file (or one with no usable document) is an error
 * naming the file, invalid UTF-8 in a benchmark file is an error naming file and line, the request cache is
 * untrusted (entries that are not finite log-likelihoods <= 0, malformed, torn or conflicting are discarded
 * and rescored, with one warning that counts them; a key ends up with one value), and a model's own answer
 * is checked (a NaN or a positive log-likelihood is an error, never a score).
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { ScoringModel } from "@hippocrates/core";
import { describe, expect, it } from "vitest";
import { createTaskRegistry, loadMmluCsv, loadTaskFile, openRequestCache, requestKey } from "../src/index.js";
import { createDetModel, scoreRequest } from "./detModel.js";
import { evaluateShared, useTempDir } from "./helpers.js";

const tmp = useTempDir("hippo-eval-bad-");

/** A data folder whose benchmark files are the given contents (relative path -> text or bytes). */
async function dataDir(name: string, files: Record<string, string | Uint8Array>): Promise<string> {
  const root = join(tmp.dir, name);
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(join(root, rel, ".."), { recursive: true });
    await writeFile(join(root, rel), content);
  }
  return root;
}

const MEDQA = "benchmarks/medqa/medqa_us_4options_test.jsonl";
const row = (q: string) =>
  `${JSON.stringify({ question: q, options: { A: "a", B: "b", C: "c", D: "d" }, answer_idx: "B" })}\n`;

describe("empty benchmark files are errors naming the file", () => {
  it.each([
    ["an empty JSONL file", "medqa_usmle", "v0.3", { [MEDQA]: "" }, MEDQA],
    ["a JSONL file of blank lines", "medqa_usmle", "v0.3", { [MEDQA]: "\n\n  \n" }, MEDQA],
    [
      "a PQA-L file holding {}",
      "pubmedqa",
      "v0.3",
      { "benchmarks/pubmedqa/ori_pqal.json": "{}" },
      "ori_pqal.json",
    ],
    [
      "an MMLU CSV with only its header",
      "mmlu_anatomy",
      "current",
      {
        "benchmarks/mmlu_medical/test/anatomy_test.csv": "question,choice0,choice1,choice2,choice3,answer\n",
        "benchmarks/mmlu_medical/dev/anatomy_dev.csv":
          "question,choice0,choice1,choice2,choice3,answer\nq,a,b,c,d,0\n",
      },
      "anatomy_test.csv",
    ],
  ] as const)("%s", async (_what, task, profile, files, named) => {
    const data = await dataDir(`empty-${task}-${Object.values(files)[0]?.length}`, files);
    const run = evaluateShared({ model: createDetModel(), tasks: [task], profile, dataDir: data });
    await expect(run).rejects.toThrow(new RegExp(`${named.replace(".", "\\.")}: no documents in the file`));
  });

  it("a limit of 0 leaves nothing to evaluate: an error, not acc null", async () => {
    await expect(
      evaluateShared({ model: createDetModel(), tasks: ["medqa_usmle"], limit: 0 }),
    ).rejects.toThrow(/task medqa_usmle: no documents to evaluate/);
  });

  it("a user task file whose test file is empty", async () => {
    await writeFile(join(tmp.dir, "empty.jsonl"), "");
    await writeFile(
      join(tmp.dir, "empty.task.json"),
      JSON.stringify({
        name: "empty_task",
        files: { test: "empty.jsonl" },
        fields: { question: "q", options: "o", answer: "a" },
      }),
    );
    const task = await loadTaskFile(join(tmp.dir, "empty.task.json"));
    await expect(task.load(tmp.dir)).rejects.toThrow(/empty\.jsonl: no documents in the file/);
  });
});

describe("invalid UTF-8 in benchmark files is an error naming file and line", () => {
  const bad = (text: string, at = "#BAD#") => {
    const [a, b] = text.split(at) as [string, string];
    return Buffer.concat([Buffer.from(a), Buffer.from([0xff, 0xfe]), Buffer.from(b)]);
  };
  it("JSONL (MedQA), line 2", async () => {
    const data = await dataDir("utf8-jsonl", { [MEDQA]: bad(`${row("first?")}${row("second #BAD#?")}`) });
    const task = createTaskRegistry().get("medqa_usmle", "v0.3");
    await expect(task.load(data)).rejects.toThrow(/medqa_us_4options_test\.jsonl:2: invalid UTF-8/);
  });
  it("JSON (PQA-L), line 3", async () => {
    const json = '{\n  "1": {"QUESTION": "q", "CONTEXTS": ["c"],\n "final_decision": "yes #BAD#"}\n}';
    const data = await dataDir("utf8-json", { "benchmarks/pubmedqa/ori_pqal.json": bad(json) });
    const task = createTaskRegistry().get("pubmedqa", "v0.3");
    await expect(task.load(data)).rejects.toThrow(/ori_pqal\.json:3: invalid UTF-8/);
  });
  it("CSV (MMLU), line 3", async () => {
    const csv = "question,choice0,choice1,choice2,choice3,answer\nq1,a,b,c,d,0\nq2 #BAD#,a,b,c,d,1\n";
    const data = await dataDir("utf8-csv", { "t/anatomy_test.csv": bad(csv) });
    await expect(loadMmluCsv(join(data, "t/anatomy_test.csv"))).rejects.toThrow(
      /anatomy_test\.csv:3: invalid UTF-8/,
    );
  });
});

describe("the request cache is untrusted", () => {
  const reqsA = [
    { context: [1, 2, 3], continuation: [4] },
    { context: [1, 2, 3], continuation: [5, 6] },
  ];
  const reqsB = [{ context: [9], continuation: [8] }];

  it("non-finite, non-numeric, positive, malformed, torn and conflicting entries are discarded; a key keeps one value", async () => {
    const cacheDir = join(tmp.dir, "cache-unit");
    const c0 = await openRequestCache(cacheDir, "m");
    const kA = requestKey("m", reqsA);
    const kB = requestKey("m", reqsB);
    const kC = requestKey("m", [{ context: [7], continuation: [7] }]);
    const good = {
      k: kA,
      r: [
        [-1.25, true],
        [-3.5, false],
      ],
    };
    await writeFile(
      c0.path,
      `${[
        JSON.stringify(good),
        JSON.stringify({ k: kB, r: [["-1.0", true]] }), // a string
        JSON.stringify({ k: kB, r: [[1e308, true]] }), // not a log-probability
        '{"k":"' + kB + '","r":[[NaN,true]]}', // not JSON
        JSON.stringify({ k: kB, r: [[null, true]] }), // Infinity as JSON writes it
        JSON.stringify({ k: kC, r: [[-1, true]] }),
        JSON.stringify({ k: kC, r: [[-2, true]] }), // conflicts with the line before
        JSON.stringify({ k: "short", r: [[-1, true]] }),
        JSON.stringify({
          k: kA,
          r: [
            [-1.25, true],
            [-3.5, false],
          ],
        }), // a duplicate, same value: kept once
      ].join("\n")}\n{"k":"${kB}","r":[[-0.5,tr`,
    );
    const c = await openRequestCache(cacheDir, "m");
    expect(c.discarded).toBe(8);
    expect(c.get(kA, 2)).toEqual([
      { logprob: -1.25, isGreedy: true },
      { logprob: -3.5, isGreedy: false },
    ]);
    expect(c.get(kB, 1)).toBeUndefined();
    expect(c.get(kC, 1)).toBeUndefined();
    // The file was rewritten with the usable entries only, and an append starts on a line of its own.
    await c.put(kB, [{ logprob: -0.75, isGreedy: false }]);
    await c.put(kB, [{ logprob: -9, isGreedy: false }]);
    await c.flush();
    const lines = (await readFile(c.path, "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toEqual([good, { k: kB, r: [[-0.75, false]] }]);
    const again = await openRequestCache(cacheDir, "m");
    expect(again.discarded).toBe(0);
    expect(again.get(kB, 1)).toEqual([{ logprob: -0.75, isGreedy: false }]);
  });

  it("evaluate rescores what it discards, warns once with the count, and gives the clean run's numbers", async () => {
    const opts = { tasks: ["pubmedqa"], limit: 4, now: () => 0 };
    const clean = await evaluateShared({ ...opts, model: createDetModel() });
    const cacheDir = join(tmp.dir, "cache-eval");
    await evaluateShared({ ...opts, model: createDetModel(), cacheDir });
    const c = await openRequestCache(cacheDir, createDetModel().name);
    const text = await readFile(c.path, "utf8");
    const [first, second, ...rest] = text.trim().split("\n");
    // Poison two documents: a string log-probability and an absurd 1e308.
    const poison = (line: string, v: unknown) => {
      const e = JSON.parse(line);
      e.r[0][0] = v;
      return JSON.stringify(e);
    };
    await writeFile(
      c.path,
      `${[poison(first as string, "-2.5"), poison(second as string, 1e308), ...rest].join("\n")}\n`,
    );
    const warnings: string[] = [];
    const m = createDetModel();
    const again = await evaluateShared({ ...opts, model: m, cacheDir, log: (w) => warnings.push(w) });
    expect(m.calls).toBe(2);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/discarded 2 unusable lines of the request cache .*scored again/);
    expect(again.results).toEqual(clean.results);
    expect(again.samples).toEqual(clean.samples);
  });
});

describe("a model's answer is checked", () => {
  const base = () => ({ tasks: ["medqa_usmle"], limit: 2 });
  const model = (f: (lp: number) => number): ScoringModel => ({
    name: "odd",
    maxLength: 4096,
    logLikelihood: async (reqs) =>
      reqs.map((r) => ({ ...scoreRequest(r), logprob: f(scoreRequest(r).logprob) })),
  });
  it.each([
    ["NaN", () => Number.NaN],
    ["a positive log-likelihood", () => 0.5],
    ["-Infinity", () => Number.NEGATIVE_INFINITY],
  ])("%s is an error naming the task and document, never a score", async (_what, f) => {
    await expect(evaluateShared({ ...base(), model: model(f) })).rejects.toThrow(
      /model odd returned an invalid result for continuation 0 of document 0 of medqa_usmle/,
    );
  });
  it("a wrong number of results", async () => {
    const short: ScoringModel = {
      name: "short",
      maxLength: 4096,
      logLikelihood: async (r) => r.slice(1).map(scoreRequest),
    };
    await expect(evaluateShared({ ...base(), model: short })).rejects.toThrow(
      /returned 3 results for the 4 requests/,
    );
  });
});
