/** Hub ids and revisions, with huggingface_hub's validate_repo_id rules, and dataset glob patterns. */
import { describe, expect, it } from "vitest";
import { globMatch, hubRef, isRepoId, parseHubId, repoFolderName } from "../src/index.js";

describe("Hub ids", () => {
  it("accepts org/name, a canonical name and an @revision", () => {
    expect(parseHubId("meta-llama/Llama-2-7b-hf")).toEqual({
      repo: "meta-llama/Llama-2-7b-hf",
      revision: undefined,
    });
    expect(parseHubId("gpt2")).toEqual({ repo: "gpt2", revision: undefined });
    expect(parseHubId("org/name@refs/pr/3")).toEqual({ repo: "org/name", revision: "refs/pr/3" });
    expect(parseHubId("org/name@v1.0")).toEqual({ repo: "org/name", revision: "v1.0" });
  });

  it("does not take paths for ids", () => {
    for (const path of [
      "./model",
      "../model",
      "/abs/model",
      "runs/sft/merged",
      "org/",
      "a--b/c",
      "a/b..c",
      "org/name.git",
      "-org/x",
      "org/name@",
      "org/name@a..b",
      "org/name@a b",
    ]) {
      expect(parseHubId(path), path).toBeNull();
    }
    expect(isRepoId("x".repeat(97))).toBe(false);
  });

  it("refuses a revision given twice differently", () => {
    expect(hubRef("org/name@v1", "v1")).toEqual({ repo: "org/name", revision: "v1" });
    expect(() => hubRef("org/name@v1", "v2")).toThrow(/names revision v1 but the revision option is v2/);
    expect(() => hubRef("org/name", "bad rev")).toThrow(/not a valid revision/);
  });

  it("names cache folders as Python does", () => {
    expect(repoFolderName("org/name", "model")).toBe("models--org--name");
    expect(repoFolderName("pubmed_qa", "dataset")).toBe("datasets--pubmed_qa");
  });
});

describe("data_files globs", () => {
  it("matches as the datasets library's patterns do", () => {
    expect(
      globMatch(
        "data/test-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*",
        "data/test-00000-of-00001-997553f5b24c9767.parquet",
      ),
    ).toBe(true);
    expect(globMatch("**/test[-._ 0-9]*", "test.json")).toBe(true);
    expect(globMatch("**/test[-._ 0-9]*", "a/b/test_1.csv")).toBe(true);
    expect(globMatch("**/test[-._ 0-9]*", "testing.json")).toBe(false);
    expect(globMatch("**/*[-._ 0-9]dev[-._ 0-9]*", "medqa_dev.json")).toBe(true);
    expect(globMatch("anatomy/test-*", "anatomy/test-00000-of-00001.parquet")).toBe(true);
    expect(globMatch("anatomy/test-*", "anatomy/sub/test-0.parquet")).toBe(false);
    expect(globMatch("**", ".hidden/x.json")).toBe(false);
    expect(globMatch(".hidden/*", ".hidden/x.json")).toBe(true);
    expect(globMatch("**", "__pycache__/x.json")).toBe(false);
    expect(globMatch("[!a]*.csv", "b.csv")).toBe(true);
    expect(globMatch("[!a]*.csv", "a.csv")).toBe(false);
  });
});
