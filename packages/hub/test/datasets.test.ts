/**
 * fetchDatasetFiles against the loopback Hub serving `../shared/data` laid out as the real benchmark
 * repositories: split/config resolution as the datasets library does it (default patterns, README configs,
 * the parquet export), the files' contents read back with hyparquet, caching and offline mode.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type DatasetFilesOptions, fetchDatasetFiles } from "../src/index.js";
import { benchmarkRepos, hubFixture, objectKeysInOrder } from "../src/testing/index.js";
import { LAYOUT_REPOS, rejection, SHARED } from "./helpers.js";

const fx = hubFixture("hippo-hub-datasets-");

/**
 * A stand-in for PubMedQA's fold-0 split, enough for the layout tests here: the official test set in
 * test_ground_truth.json's order, the other PMIDs in file order as 450 train and 50 validation. PubMedQA's own
 * split is @hippocrates/eval's `splitPqal` (checked there against CPython); this package does not compute it.
 */
async function standInFold0() {
  const ori = objectKeysInOrder(await readFile(join(SHARED, "benchmarks/pubmedqa/ori_pqal.json"), "utf8"));
  const test = objectKeysInOrder(
    await readFile(join(SHARED, "benchmarks/pubmedqa/test_ground_truth.json"), "utf8"),
  );
  const rest = ori.filter((id) => !test.includes(id));
  return { train: rest.slice(0, 450), validation: rest.slice(450), test };
}

beforeAll(async () => {
  await fx.start({
    repos: [...(await benchmarkRepos(SHARED, { pubmedqaFold0: await standInFold0() })), ...LAYOUT_REPOS],
  });
});

afterAll(() => fx.close());
beforeEach(() => fx.freshCache());

const opts = (o: DatasetFilesOptions) => fx.options(o);

async function rows(path: string): Promise<Record<string, unknown>[]> {
  return (await parquetReadObjects({ file: await asyncBufferFromFile(path) })) as Record<string, unknown>[];
}

/** Top-level column names (the schema is a flattened tree: skip each column's nested elements). */
async function columns(path: string): Promise<string[]> {
  const { schema } = await parquetMetadataAsync(await asyncBufferFromFile(path));
  const names: string[] = [];
  let i = 1;
  const skip = (): void => {
    const el = schema[i++];
    for (let c = 0; c < (el?.num_children ?? 0); c++) skip();
  };
  while (i < schema.length) {
    names.push(schema[i]?.name as string);
    skip();
  }
  return names;
}

describe("benchmark datasets by id", () => {
  it("GBaker/MedQA-USMLE-4-options-hf: test.json by the split keyword in its name, JSON Lines rows", async () => {
    const r = await fetchDatasetFiles("GBaker/MedQA-USMLE-4-options-hf", opts({ split: "test" }));
    expect(r).toMatchObject({
      repo: "GBaker/MedQA-USMLE-4-options-hf",
      revision: "main",
      config: "default",
      split: "test",
    });
    expect(r.commit).toBe(fx.hub.commitOf("GBaker/MedQA-USMLE-4-options-hf", "main", "dataset"));
    expect(r.files.map((f) => [f.path, f.format])).toEqual([["test.json", "json"]]);
    expect(r.files[0]?.localPath).toBe(
      join(fx.cacheDir, "datasets--GBaker--MedQA-USMLE-4-options-hf", "snapshots", r.commit, "test.json"),
    );
    const lines = (await readFile(r.files[0]?.localPath as string, "utf8"))
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1273);
    expect(Object.keys(lines[0])).toEqual([
      "id",
      "sent1",
      "sent2",
      "ending0",
      "ending1",
      "ending2",
      "ending3",
      "label",
    ]);
    expect(lines[0]).toMatchObject({
      id: "test-00000",
      sent2: "",
      ending1: "Tell the attending that he cannot fail to disclose this mistake",
      label: 1,
    });
    const e = await rejection(
      fetchDatasetFiles("GBaker/MedQA-USMLE-4-options-hf", opts({ split: "validation" })),
    );
    expect(e.message).toMatch(/config "default" has no split "validation"/);
    expect(e.expected).toBe("test");
  });

  it("openlifescienceai/medmcqa: data/validation-00000-of-00001.parquet with MedMCQA's columns", async () => {
    const r = await fetchDatasetFiles("openlifescienceai/medmcqa", opts({ split: "validation" }));
    expect(r.files.map((f) => f.path)).toEqual(["data/validation-00000-of-00001.parquet"]);
    const path = r.files[0]?.localPath as string;
    expect(await columns(path)).toEqual([
      "id",
      "question",
      "opa",
      "opb",
      "opc",
      "opd",
      "cop",
      "choice_type",
      "exp",
      "subject_name",
      "topic_name",
    ]);
    const data = await rows(path);
    expect(data).toHaveLength(4183);
    expect(data[0]).toMatchObject({
      id: null,
      question: "Which of the following is not true for myelinated nerve fibers:",
      opa: "Impulse through myelinated fibers is slower than non-myelinated fibers",
      exp: null,
    });
    expect(typeof data[0]?.cop).toBe("bigint");
  });

  it("qiaojin/PubMedQA pqa_labeled from its README configs, also under the old id pubmed_qa", async () => {
    const r = await fetchDatasetFiles("qiaojin/PubMedQA", opts({ config: "pqa_labeled", split: "train" }));
    expect(r.files.map((f) => f.path)).toEqual(["pqa_labeled/train-00000-of-00001.parquet"]);
    const data = await rows(r.files[0]?.localPath as string);
    const ori = await readFile(join(SHARED, "benchmarks/pubmedqa/ori_pqal.json"), "utf8");
    expect(data.map((d) => String(d.pubid))).toEqual(objectKeysInOrder(ori));
    expect(data[0]).toMatchObject({ pubid: 21645374, final_decision: "yes" });
    const context = data[0]?.context as Record<string, unknown>;
    expect(context.reasoning_required_pred).toEqual(["y", "e", "s"]);
    expect(Object.keys(context)).toEqual([
      "contexts",
      "labels",
      "meshes",
      "reasoning_required_pred",
      "reasoning_free_pred",
    ]);
    const old = await fetchDatasetFiles("pubmed_qa", opts({ config: "pqa_labeled", split: "train" }));
    expect(old.commit).toBe(r.commit);
    expect(old.files[0]?.localPath).toBe(
      join(
        fx.cacheDir,
        "datasets--pubmed_qa",
        "snapshots",
        r.commit,
        "pqa_labeled/train-00000-of-00001.parquet",
      ),
    );
    expect(fx.hub.requests.some((q) => q.status === 307)).toBe(true);
    const e = await rejection(
      fetchDatasetFiles("qiaojin/PubMedQA", opts({ config: "pqa_artificial", split: "train" })),
    );
    expect(e.message).toMatch(/has no config "pqa_artificial"/);
  });

  it("bigbio/pubmed_qa: points a script-only repository to its parquet export, which holds the fold-0 splits", async () => {
    const e = await rejection(
      fetchDatasetFiles(
        "bigbio/pubmed_qa",
        opts({ config: "pubmed_qa_labeled_fold0_source", split: "test" }),
      ),
    );
    expect(e.message).toMatch(
      /built by the loading script pubmed_qa\.py, which is not run here .*its parquet export is revision refs\/convert\/parquet/,
    );
    const test = await fetchDatasetFiles(
      "bigbio/pubmed_qa",
      opts({ config: "pubmed_qa_labeled_fold0_source", split: "test", revision: "refs/convert/parquet" }),
    );
    expect(test.files.map((f) => f.path)).toEqual(["pubmed_qa_labeled_fold0_source/test/0000.parquet"]);
    expect(
      await readFile(
        join(fx.cacheDir, "datasets--bigbio--pubmed_qa", "refs", "refs", "convert", "parquet"),
        "utf8",
      ),
    ).toBe(test.commit);
    const path = test.files[0]?.localPath as string;
    expect(await columns(path)).toEqual([
      "QUESTION",
      "CONTEXTS",
      "LABELS",
      "MESHES",
      "YEAR",
      "reasoning_required_pred",
      "reasoning_free_pred",
      "final_decision",
      "LONG_ANSWER",
    ]);
    // The 500 questions are PubMedQA's official test set (test_ground_truth.json).
    const ori = JSON.parse(await readFile(join(SHARED, "benchmarks/pubmedqa/ori_pqal.json"), "utf8"));
    const truth = JSON.parse(
      await readFile(join(SHARED, "benchmarks/pubmedqa/test_ground_truth.json"), "utf8"),
    );
    const data = await rows(path);
    const testIds = Object.keys(truth);
    expect(data).toHaveLength(500);
    expect(new Set(data.map((d) => d.QUESTION))).toEqual(new Set(testIds.map((id) => ori[id].QUESTION)));
    expect(data.map((d) => d.final_decision).sort()).toEqual(testIds.map((id) => truth[id]).sort());
  });

  it("hails/mmlu_no_train: one README config per subject, test and dev splits", async () => {
    const test = await fetchDatasetFiles("hails/mmlu_no_train", opts({ config: "anatomy", split: "test" }));
    expect(test.files.map((f) => f.path)).toEqual(["anatomy/test-00000-of-00001.parquet"]);
    const data = await rows(test.files[0]?.localPath as string);
    expect(data).toHaveLength(135);
    expect(data[0]).toEqual({
      question:
        "A lesion causing compression of the facial nerve at the stylomastoid foramen will cause ipsilateral",
      subject: "anatomy",
      choices: [
        "paralysis of the facial muscles.",
        "paralysis of the facial muscles and loss of taste.",
        "paralysis of the facial muscles, loss of taste and lacrimation.",
        "paralysis of the facial muscles, loss of taste, lacrimation and decreased salivation.",
      ],
      answer: 0n,
    });
    const dev = await fetchDatasetFiles(
      "hails/mmlu_no_train",
      opts({ config: "clinical_knowledge", split: "dev" }),
    );
    expect(await rows(dev.files[0]?.localPath as string)).toHaveLength(5);
    const e = await rejection(fetchDatasetFiles("hails/mmlu_no_train", opts({ split: "test" })));
    expect(e.message).toMatch(/has several configs and none is the default: name one/);
  });

  it("augtoma/medqa_usmle and augtoma/medmcqa: the v0.3 fork's test splits", async () => {
    const medqa = await fetchDatasetFiles("augtoma/medqa_usmle", opts({ split: "test" }));
    expect(medqa.files.map((f) => f.path)).toEqual(["data/test-00000-of-00001-997553f5b24c9767.parquet"]);
    const q = await rows(medqa.files[0]?.localPath as string);
    expect(q).toHaveLength(1273);
    expect(Object.keys(q[0] as object)).toEqual([
      "question",
      "answer",
      "options",
      "meta_info",
      "answer_idx",
      "metamap_phrases",
    ]);
    expect(q[0]).toMatchObject({ answer_idx: "B", meta_info: "step1" });
    const mc = await fetchDatasetFiles("augtoma/medmcqa", opts({ split: "test" }));
    expect(await rows(mc.files[0]?.localPath as string)).toHaveLength(4183);
  });
});

describe("dataset file resolution", () => {
  it("takes the default config of a README with several, and a config by name", async () => {
    const big = await fetchDatasetFiles("org/two-configs", opts({ split: "test" }));
    expect(big.config).toBe("big");
    expect(big.files.map((f) => [f.path, f.format])).toEqual([
      ["big/a.csv", "csv"],
      ["big/b.csv", "csv"],
    ]);
    const small = await fetchDatasetFiles("org/two-configs", opts({ config: "small", split: "train" }));
    expect(small.files.map((f) => f.path)).toEqual(["small/x.jsonl"]);
  });

  it("maps split keywords in folder names (eval -> test) and ignores hidden folders", async () => {
    const train = await fetchDatasetFiles("org/folders", opts({ split: "train" }));
    expect(train.files.map((f) => f.path)).toEqual(["data/train/part-0.jsonl", "data/train/part-1.jsonl"]);
    const test = await fetchDatasetFiles("org/folders", opts({ split: "test" }));
    expect(test.files.map((f) => f.path)).toEqual(["data/eval/part-0.jsonl"]);
  });

  it("takes explicit data file patterns", async () => {
    const r = await fetchDatasetFiles(
      "org/folders",
      opts({ split: "mine", dataFiles: ["data/*/part-1.jsonl", ".hidden/*.jsonl"] }),
    );
    expect(r.files.map((f) => f.path)).toEqual(["data/train/part-1.jsonl", ".hidden/test.jsonl"]);
  });

  it("sends no request for a cached split, works offline, and names what an offline miss lacks", async () => {
    const first = await fetchDatasetFiles("openlifescienceai/medmcqa", opts({ split: "validation" }));
    fx.hub.requests.length = 0;
    expect(await fetchDatasetFiles("openlifescienceai/medmcqa", opts({ split: "validation" }))).toEqual(
      first,
    );
    expect(
      await fetchDatasetFiles("openlifescienceai/medmcqa", opts({ split: "validation", offline: true })),
    ).toEqual(first);
    expect(fx.hub.requests).toEqual([]);
    const e = await rejection(
      fetchDatasetFiles("openlifescienceai/medmcqa", opts({ split: "train", offline: true })),
    );
    expect(e.message).toMatch(
      /^dataset openlifescienceai\/medmcqa \(config default, split train\) is not in the Hub cache and HF_HUB_OFFLINE is set \(revision main/,
    );
    expect(fx.hub.requests).toEqual([]);
  });

  it("downloads only the split asked for", async () => {
    await fetchDatasetFiles("hails/mmlu_no_train", opts({ config: "anatomy", split: "test" }));
    const downloaded = fx.hub.requests
      .filter((q) => q.url.includes("/resolve/") && q.range === undefined)
      .map((q) => q.url.split("/resolve/")[1]?.split("/").slice(1).join("/"));
    expect(downloaded.sort()).toEqual(["README.md", "anatomy/test-00000-of-00001.parquet"]);
    expect(existsSync(join(fx.cacheDir, "datasets--hails--mmlu_no_train"))).toBe(true);
  });
});
