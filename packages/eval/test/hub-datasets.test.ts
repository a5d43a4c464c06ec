/**
 * The built-in tasks by their Hub datasets: without a data folder, each task fetches the dataset its task file
 * names (lm-evaluation-harness's `dataset_path` / `dataset_name` / `*_split`, the revision pinned in
 * `dataset_kwargs`) from a loopback Hub serving `../shared/data` as the real repositories hold it (parquet,
 * JSON Lines), reads the repository's own columns, and builds for every document the same prompt,
 * continuations and gold index as from the shared files; the results record each split's repository,
 * revision and commit. A second run reads the cache without a request.
 */
import type { HubOptions } from "@hippocrates/hub";
import { hubFixture } from "@hippocrates/hub/testing";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  buildContexts,
  createTaskRegistry,
  datasetSources,
  evaluate,
  MMLU_MEDICAL_SUBJECTS,
  type Profile,
  parseTaskFile,
} from "../src/index.js";
import { createDetModel } from "./detModel.js";
import { DATA_DIR, llama2 } from "./helpers.js";
import { pinnedBenchmarkRepos, pinnedRevisions } from "./hubData.js";

const reg = createTaskRegistry();
const fx = hubFixture("hippo-eval-hub-");
beforeAll(async () => {
  await fx.start({ repos: await pinnedBenchmarkRepos(DATA_DIR) });
});
afterAll(() => fx.close());
beforeEach(() => fx.freshCache());

/** The loopback Hub with this test's (fresh) cache, no bar. */
const hubOptions = (extra: HubOptions = {}): HubOptions => fx.options(extra);

/** Prompt, continuations and gold of every document, from the Hub and from the shared files. */
async function both(name: string, profile: Profile, k: number, options: HubOptions) {
  const task = reg.get(name, profile);
  const fromHub = await task.load(undefined, { hub: options, numFewshot: k });
  const fromFiles = await task.load(DATA_DIR, { numFewshot: k });
  const built = (data: typeof fromHub) =>
    buildContexts(task, data, { profile, numFewshot: k }).map((b) => [b.context, b.continuations, b.gold]);
  return { hub: built(fromHub), files: built(fromFiles), data: fromHub };
}

describe("the v0.3 profile's tasks from the authors' fork's datasets", () => {
  it.each([
    ["medqa_usmle", 0, "augtoma/medqa_usmle", 1273],
    ["medmcqa", 0, "augtoma/medmcqa", 4183],
    ["pubmedqa", 0, "pubmed_qa", 1000],
    ["pubmedqa", 3, "pubmed_qa", 1000],
  ] as const)(
    "%s %i-shot: byte-identical prompts to ../shared/data's, every document",
    async (name, k, repo, count) => {
      const got = await both(name, "v0.3", k, hubOptions());
      expect(got.hub).toHaveLength(count);
      expect(got.hub).toEqual(got.files);
      const source = got.data.sources?.test;
      expect(source).toMatchObject({ repo, revision: pinnedRevisions().get(repo) });
      expect(source?.commit).toMatch(/^[0-9a-f]{40}$/);
    },
  );

  it("pubmed_qa is read at the pinned commit of qiaojin/PubMedQA, through the Hub's redirect of the old id", async () => {
    const got = await both("pubmedqa", "v0.3", 0, hubOptions());
    expect(got.data.sources?.test).toEqual({
      repo: "pubmed_qa",
      config: "pqa_labeled",
      split: "train",
      revision: "9001f2853fb87cab8d220904e0de81ac6973b318",
      commit: "9001f2853fb87cab8d220904e0de81ac6973b318",
      files: ["pqa_labeled/train-00000-of-00001.parquet"],
    });
    // The documents keep PubMedQA's PMIDs as ids (the parquet's pubid column).
    expect(got.data.test[0]?.id).toBe("21645374");
  });
});

describe("the current profile's tasks from today's lm-evaluation-harness datasets", () => {
  it.each([
    ["medqa_4options", 0, "GBaker/MedQA-USMLE-4-options-hf"],
    ["medmcqa", 0, "openlifescienceai/medmcqa"],
    ["pubmedqa", 0, "bigbio/pubmed_qa"],
    ["pubmedqa", 5, "bigbio/pubmed_qa"],
    ["mmlu_anatomy", 0, "hails/mmlu_no_train"],
    ...MMLU_MEDICAL_SUBJECTS.map((s) => [`mmlu_${s}`, 5, "hails/mmlu_no_train"] as const),
  ] as const)(
    "%s %i-shot: byte-identical prompts to ../shared/data's, every document",
    async (name, k, repo) => {
      const got = await both(name, "current", k, hubOptions());
      expect(got.hub.length).toBeGreaterThan(0);
      expect(got.hub).toEqual(got.files);
      expect(got.data.sources?.test?.repo).toBe(repo);
    },
  );

  it("medqa_4options reads GBaker's JSON Lines test.json at the pinned commit; the samples' doc is its row", async () => {
    const task = reg.get("medqa_4options", "current");
    const data = await task.load(undefined, { hub: hubOptions(), numFewshot: 0 });
    expect(data.sources?.test).toEqual({
      repo: "GBaker/MedQA-USMLE-4-options-hf",
      config: "default",
      split: "test",
      revision: "17af9355ef89fba60de966eabaeba797c695f86e",
      commit: "17af9355ef89fba60de966eabaeba797c695f86e",
      files: ["test.json"],
    });
    expect(Object.keys(data.test[0]?.raw ?? {})).toEqual([
      "id",
      "sent1",
      "sent2",
      "ending0",
      "ending1",
      "ending2",
      "ending3",
      "label",
    ]);
  });

  it("pubmedqa's fold-0 test, train and validation splits come from bigbio's parquet export", async () => {
    const task = reg.get("pubmedqa", "current");
    const data = await task.load(undefined, { hub: hubOptions(), numFewshot: 5 });
    expect([data.test.length, data.train?.length]).toEqual([500, 450]);
    expect(data.sources?.train).toMatchObject({
      repo: "bigbio/pubmed_qa",
      config: "pubmed_qa_labeled_fold0_source",
      split: "train",
      revision: "refs/convert/parquet",
      files: ["pubmed_qa_labeled_fold0_source/train/0000.parquet"],
    });
  });
});

describe("what is fetched and recorded", () => {
  it("0-shot fetches the evaluated split only; the few-shot split only when shots are wanted", async () => {
    const options = hubOptions();
    fx.hub.requests.length = 0;
    await reg.get("pubmedqa", "current").load(undefined, { hub: options, numFewshot: 0 });
    const paths = fx.hub.requests.map((r) => r.url);
    expect(paths.some((u) => u.includes("/test/0000.parquet"))).toBe(true);
    expect(paths.some((u) => u.includes("/train/"))).toBe(false);
  });

  it("evaluate without a data folder records each task's dataset repo, config, revision and commit", async () => {
    const options = hubOptions();
    const out = await evaluate({
      model: createDetModel(),
      tokenizer: await llama2(),
      tasks: ["medqa_usmle", "medmcqa", "pubmedqa"],
      profile: "v0.3",
      limit: 2,
      hub: options,
    });
    const meta = out.results.configs.medqa_usmle?.metadata as Record<string, unknown>;
    expect(meta.datasets).toEqual({
      test: {
        repo: "augtoma/medqa_usmle",
        config: "default",
        split: "test",
        revision: "main",
        commit: fx.hub.commitOf("augtoma/medqa_usmle", "main", "dataset"),
        files: ["data/test-00000-of-00001-997553f5b24c9767.parquet"],
      },
    });
    expect(out.results.configs.medqa_usmle).toMatchObject({
      dataset_path: "augtoma/medqa_usmle",
      dataset_kwargs: { revision: "main" },
      test_split: "test",
    });
    expect(datasetSources(out.results).map((s) => `${s.role} ${s.repo}@${s.commit}`)).toEqual([
      `dataset medmcqa/test augtoma/medmcqa@${fx.hub.commitOf("augtoma/medmcqa", "main", "dataset")}`,
      `dataset medqa_usmle/test augtoma/medqa_usmle@${fx.hub.commitOf("augtoma/medqa_usmle", "main", "dataset")}`,
      "dataset pubmedqa/test pubmed_qa@9001f2853fb87cab8d220904e0de81ac6973b318",
    ]);
    // The v0.3 fork evaluates pubmed_qa's train split (all 1,000 labelled questions).
    expect(datasetSources(out.results).find((s) => s.role === "dataset pubmedqa/test")?.split).toBe("train");
  });

  it("a second run reads the cache: offline, with no request", async () => {
    const options = hubOptions();
    await reg.get("medmcqa", "v0.3").load(undefined, { hub: options, numFewshot: 0 });
    fx.hub.requests.length = 0;
    const again = await reg
      .get("medmcqa", "v0.3")
      .load(undefined, { hub: { ...options, offline: true }, numFewshot: 0 });
    expect(again.test).toHaveLength(4183);
    expect(fx.hub.requests).toEqual([]);
  });

  it("offline with an empty cache names the dataset, config, split and revision", async () => {
    const e = await reg
      .get("medqa_usmle", "v0.3")
      .load(undefined, { hub: hubOptions({ offline: true }), numFewshot: 0 })
      .then(
        () => undefined,
        (err: unknown) => err as Error,
      );
    expect(e?.message).toMatch(/augtoma\/medqa_usmle.*split test.*HF_HUB_OFFLINE/);
    expect(e?.message).toContain("revision main");
  });

  it("a data folder wins over the Hub: no request", async () => {
    fx.hub.requests.length = 0;
    const data = await reg.get("medqa_usmle", "v0.3").load(DATA_DIR, { hub: hubOptions(), numFewshot: 0 });
    expect(data.sources).toBeUndefined();
    expect(fx.hub.requests).toEqual([]);
  });

  it("a task of local files with no data folder and no Hub dataset says to give the folder", async () => {
    const e = await reg
      .get("medqa_usmle_5options", "v0.3")
      .load(undefined, { hub: hubOptions() })
      .then(
        () => undefined,
        (err: unknown) => err as Error,
      );
    expect(e?.message).toMatch(/task medqa_usmle_5options reads its files from a data folder.*--data-dir/);
  });
});

describe("task files that name a Hub dataset", () => {
  it("a user's task file with only a dataset and fields reads the rows by its field mapping", async () => {
    const entry = parseTaskFile(
      {
        name: "my_medmcqa",
        dataset: { dataset_path: "openlifescienceai/medmcqa", test_split: "validation" },
        fields: { question: "question", options: ["opa", "opb", "opc", "opd"], answer: "cop" },
        prompt: "letters",
        choices: "letters",
        metrics: ["acc"],
      },
      "/tasks/my_medmcqa.json",
    );
    if (entry.kind !== "task") throw new Error("not a task");
    const data = await entry.task.load(undefined, { hub: hubOptions(), numFewshot: 0 });
    const local = await reg.get("medmcqa", "current").load(DATA_DIR, { numFewshot: 0 });
    expect(data.test.map((d) => [d.question, d.options, d.gold])).toEqual(
      local.test.map((d) => [d.question, d.options, d.gold]),
    );
  });

  it.each([
    [
      { dataset_path: "a/b", test_split: "test", dataset_kwargs: { trust_remote_code: true } },
      /trust_remote_code/,
    ],
    [{ dataset_path: "a/b", test_split: "test", tets_split: "x" }, /unknown dataset key "tets_split"/],
    [{ dataset_path: "a/b" }, /needs test_split/],
    [{ test_split: "test" }, /dataset_path/],
  ])("refuses a bad dataset block %j", (dataset, message) => {
    expect(() =>
      parseTaskFile(
        { name: "t", dataset, fields: { question: "q", options: "o", answer: "a" } },
        "/tasks/t.json",
      ),
    ).toThrow(message);
  });

  it("the 500-PMID test file loader cannot take a Hub dataset", () => {
    expect(() =>
      parseTaskFile(
        {
          name: "t",
          loader: "pubmedqa_test500",
          dataset: { dataset_path: "a/b", test_split: "test" },
          files: { pqal: "a.json", test_ground_truth: "b.json" },
        },
        "/tasks/t.json",
      ),
    ).toThrow(/reads local files only/);
  });
});
