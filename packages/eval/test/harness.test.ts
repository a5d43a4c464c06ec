/**
 * The current profile is lm-evaluation-harness 0.4, byte for byte. `fixtures/make_harness_replay.py` replays
 * the harness's prompt construction in CPython from its sources (EleutherAI/lm-evaluation-harness 0.4.9.1:
 * the task YAML and preprocess functions of medqa_4options, medmcqa, pubmedqa and the MMLU subjects at the
 * commits it names, `api/samplers.py` `get_context` / `first_n`, `api/task.py` `fewshot_context` and
 * `build_all_requests`, one `random.Random(1234)` per task) and PubMedQA's own `split_dataset.py`; the
 * tests here build the same requests with the package and compare every prompt, continuation and gold index
 * (a SHA-256 over all documents, and the first two literally), 0-shot and 5-shot. The fixture also holds
 * the Python text forms (repr, json.dumps, sanitize_model_name, isoformat) the results files reproduce.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadTokenizer } from "@hippocrates/tokenizer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildContexts,
  createTaskRegistry,
  evaluate,
  loadPubmedqaFold0,
  MMLU_MEDICAL_SUBJECTS,
  orderedJsonEntries,
  pyFloatRepr,
  pyIsoDateId,
  pyJsonDumps,
  pyStr,
  sanitizeModelName,
} from "../src/index.js";
import { createDetModel } from "./detModel.js";
import { DATA_DIR, dataDirWithTrainSplits } from "./helpers.js";
import { pubmedqaFold0 } from "./hubData.js";

const FIXTURES = new URL("./fixtures/", import.meta.url).pathname;
// JSON.parse keeps -0.0 (a module import of the JSON would not).
const replay = JSON.parse(readFileSync(join(FIXTURES, "harness_replay.json"), "utf8"));
const reg = createTaskRegistry();
let data: string;
let removeData: () => Promise<void>;

beforeAll(async () => {
  ({ dir: data, remove: removeData } = await dataDirWithTrainSplits());
});
afterAll(async () => {
  await removeData();
});

const TASKS = ["medqa_4options", "medmcqa", "pubmedqa", ...MMLU_MEDICAL_SUBJECTS.map((s) => `mmlu_${s}`)];

describe("current profile = lm-evaluation-harness 0.4.9.1 prompts (CPython replay of its task files and sampler)", () => {
  it.each(TASKS.flatMap((t) => [0, 5].map((k) => [t, k] as const)))(
    "%s, %i-shot: every prompt, continuation and gold index",
    async (name, k) => {
      const task = reg.get(name, "current");
      const built = buildContexts(task, await task.load(data), { profile: "current", numFewshot: k });
      const ours = built.map((b) => [b.context, b.continuations, b.gold]);
      const expected = (
        replay.prompts as Record<string, { count: number; sha256: string; first: unknown[] }>
      )[`${name}/${k}`];
      expect(expected).toBeDefined();
      expect(ours.slice(0, 2)).toEqual(expected?.first);
      expect(ours).toHaveLength(expected?.count as number);
      expect(createHash("sha256").update(JSON.stringify(ours), "utf8").digest("hex")).toBe(expected?.sha256);
    },
  );

  it("pubmedqa evaluates the fold-0 test split (500, in test_set.json order); shots come from its train split", async () => {
    const fold0 = await loadPubmedqaFold0(
      join(DATA_DIR, "benchmarks/pubmedqa/ori_pqal.json"),
      join(DATA_DIR, "benchmarks/pubmedqa/test_ground_truth.json"),
    );
    expect(fold0.test.map((d) => d.id)).toEqual(replay.pubmedqa_fold0.test);
    expect(fold0.train?.map((d) => d.id)).toEqual(replay.pubmedqa_fold0.train);
    expect(fold0.dev?.map((d) => d.id)).toEqual(replay.pubmedqa_fold0.validation);
    expect([fold0.test.length, fold0.train?.length, fold0.dev?.length]).toEqual([500, 450, 50]);
    const task = reg.get("pubmedqa", "current");
    const built = buildContexts(task, await task.load(DATA_DIR), { profile: "current", numFewshot: 5 });
    const train = new Set(replay.pubmedqa_fold0.train);
    for (const b of built) for (const id of b.shotIds) expect(train.has(id)).toBe(true);
  });

  // Moved from @hippocrates/hub's tests, which held CPython's output as a second copy of the split.
  it("splitPqal keeps PubMedQA's fold-0 split: the official test set, 50 + 450 CV items, every labelled PMID once", async () => {
    const { train, validation, test } = await pubmedqaFold0(DATA_DIR);
    const ori = readFileSync(join(DATA_DIR, "benchmarks/pubmedqa/ori_pqal.json"), "utf8");
    const truth = JSON.parse(
      readFileSync(join(DATA_DIR, "benchmarks/pubmedqa/test_ground_truth.json"), "utf8"),
    );
    expect([train.length, validation.length, test.length]).toEqual([450, 50, 500]);
    expect(new Set(test)).toEqual(new Set(Object.keys(truth)));
    expect(new Set([...train, ...validation, ...test])).toEqual(
      new Set(orderedJsonEntries(ori).map(([id]) => id)),
    );
    const digest = (ids: string[]) => createHash("sha256").update(ids.join(",")).digest("hex");
    // The orders CPython 3.11.7 gives running split_dataset.py's split() (ids joined with "," and hashed).
    expect(digest(test)).toBe("e1861bdf18f6de68e2f092e58df8959b85e19d4dd9909fb4c673ef7bac9cda0a");
    expect(digest(validation)).toBe("44ee9082b47cc6993a0497d23155c00f1e4923f86392041187ae169ea8582442");
    expect(digest(train)).toBe("0761920f5a277a31e77c28f1fdfa5e27cb937ba6b6132f3669898c6bc0a2cf13");
  });

  it("multimedqa weighs pubmedqa by its 500 documents", async () => {
    const out = await evaluate({
      model: createDetModel(),
      tokenizer: await loadTokenizer(join(DATA_DIR, "tokenizers/llama2")),
      tasks: ["multimedqa"],
      dataDir: data,
      profile: "current",
      limit: 3,
    });
    expect(out.results["n-samples"].pubmedqa).toEqual({ original: 500, effective: 3 });
    expect(out.results.group_subtasks.multimedqa).toEqual([
      "pubmedqa",
      "medmcqa",
      "medqa_4options",
      "mmlu_anatomy",
      "mmlu_clinical_knowledge",
      "mmlu_college_medicine",
      "mmlu_medical_genetics",
      "mmlu_professional_medicine",
      "mmlu_college_biology",
    ]);
    const accs = Object.values(out.samples).flatMap((rows) => rows.map((r) => r.acc));
    expect(out.results.groups?.multimedqa?.["acc,none"]).toBeCloseTo(
      accs.reduce((a, b) => a + b, 0) / accs.length,
      12,
    );
    expect(out.results.results.mmlu_anatomy?.alias).toBe(" - anatomy (mmlu)");
  });
});

describe("Python's text forms (values CPython printed)", () => {
  it("repr of floats and str of booleans, as sanitize_list writes responses", () => {
    for (const [x, r] of replay.repr as [number, string][]) expect(pyFloatRepr(x)).toBe(r);
    expect([pyStr(true), pyStr(false)]).toEqual(replay.str_bool);
  });

  it("json.dumps(doc, indent=2, ensure_ascii=False) and its SHA-256 (doc_hash)", () => {
    for (const [name, [doc, text, sha]] of Object.entries(
      replay.json_dumps as Record<string, [unknown, string, string]>,
    )) {
      expect(pyJsonDumps(doc), name).toBe(text);
      expect(createHash("sha256").update(pyJsonDumps(doc), "utf8").digest("hex")).toBe(sha);
    }
  });

  it("sanitize_model_name and the date in file names", () => {
    for (const [name, out] of replay.sanitize as [string, string][])
      expect(sanitizeModelName(name)).toBe(out);
    for (const [[y, mo, d, h, mi, s, us], out] of replay.isoformat as [number[], string][]) {
      const ms = new Date(y as number, (mo as number) - 1, d, h, mi, s, (us as number) / 1000).getTime();
      expect(pyIsoDateId(ms)).toBe(out);
    }
  });
});
