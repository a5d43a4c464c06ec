import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { HippoError } from "@hippocrates/core";
import { expect } from "vitest";
import type { RepoSpec } from "../src/testing/index.js";

/** shared/data beside the repository. */
export const SHARED = join(dirname(fileURLToPath(import.meta.url)), "../../../../shared/data");

/** The HippoError `p` rejects with (anything else fails the test). */
export async function rejection(p: Promise<unknown>): Promise<HippoError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(HippoError);
  return e as HippoError;
}

/**
 * Dataset repositories with no README configs or with several, laid out to exercise the datasets library's
 * data-file resolution: split names in file names, split keywords in folder and file names, hidden folders,
 * README `configs:` with a default.
 */
export const LAYOUT_REPOS: RepoSpec[] = [
  {
    id: "org/split-files",
    type: "dataset",
    files: ["train.json", "dev.json", "test.json"].map((path) => ({ path, content: '{"a":1}\n' })),
  },
  {
    id: "org/folders",
    type: "dataset",
    files: [
      "data/train/part-0.jsonl",
      "data/train/part-1.jsonl",
      "data/eval/part-0.jsonl",
      ".hidden/test.jsonl",
    ].map((path) => ({ path, content: "{}\n" })),
  },
  {
    id: "org/keywords",
    type: "dataset",
    files: ["my_train_file.csv", "validation-split.csv", "notes/test_2.csv"].map((path) => ({
      path,
      content: "a\n1\n",
    })),
  },
  {
    id: "org/two-configs",
    type: "dataset",
    files: [
      {
        path: "README.md",
        content:
          "---\nconfigs:\n- config_name: small\n  data_files: small/*.jsonl\n- config_name: big\n  default: true\n  data_files:\n  - split: test\n    path: [big/a.csv, big/b.csv]\n---\n",
      },
      { path: "small/x.jsonl", content: '{"a":1}\n' },
      { path: "big/a.csv", content: "a\n1\n" },
      { path: "big/b.csv", content: "a\n2\n" },
    ],
  },
];
