/**
 * Config checks come before work (issue 14): `hippo run --dry-run` and the start of every `hippo run` check
 * everything that can be checked before a stage starts, and nothing is written when a check fails. One test
 * per failure; each of them passed the checks (or crashed without a location) before the pre-flight checks.
 */
import { existsSync, readdirSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isHippoError } from "@hippocrates/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPipelineConfig } from "../src/config/load.js";
import {
  makeTempDir,
  removeTempDir,
  runHippo,
  writeConfigFile,
  writeStubModelFolder,
} from "./helpers/cli.js";

const COUNTING = fileURLToPath(new URL("./fixtures/counting-stage.ts", import.meta.url));

let dir: string;
let vocab: number;
beforeAll(async () => {
  dir = await makeTempDir("cli-checks");
  vocab = await writeStubModelFolder(join(dir, "model"));
  await writeFile(join(dir, "docs.jsonl"), '{"text":"hello world"}\n');
  await mkdir(join(dir, "records.jsonl"));
  await writeFile(join(dir, "a-file"), "not a folder\n");
});
afterAll(() => removeTempDir(dir));

const hippo = (...args: string[]) => runHippo(dir, args);
const writeConfig = (name: string, yaml: string) => writeConfigFile(dir, name, yaml);

/** The CLI refuses the config with exit 2 and one message naming `key`; the folder is as it was. */
async function refused(args: string[], key: string, text: RegExp): Promise<string> {
  const before = readdirSync(dir).sort();
  const r = await hippo(...args);
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr).toContain(key);
  expect(r.stderr).toMatch(text);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  expect(readdirSync(dir).sort()).toEqual(before);
  return r.stderr;
}

describe("hippo run --dry-run checks before any work", () => {
  it("refuses an unknown eval task", async () => {
    await writeConfig(
      "task.yaml",
      "model: ./model\noutput_dir: ./task-run\nstages:\n  - kind: eval\n    tasks: [medqa_usmel]\n",
    );
    await refused(["run", "task.yaml", "--dry-run"], "stages[0].tasks[0]", /unknown task "medqa_usmel"/);
  });

  it("refuses a `data:` that is a folder", async () => {
    await writeConfig(
      "data-folder.yaml",
      "model: ./model\noutput_dir: ./data-run\nstages:\n  - kind: cpt\n    data: ./records.jsonl\n",
    );
    await refused(
      ["run", "data-folder.yaml", "--dry-run"],
      "stages[0].data",
      /records\.jsonl: .*not a regular file/,
    );
  });

  it("refuses an output_dir that is a file, and `hippo run` leaves the file as it was", async () => {
    await writeConfig(
      "out-file.yaml",
      `model: ./model\noutput_dir: ./a-file\nstages:\n  - kind: x\n    module: ${JSON.stringify(COUNTING)}\n`,
    );
    await refused(["run", "out-file.yaml", "--dry-run"], "output_dir", /expected a folder, got a file/);
    await refused(["run", "out-file.yaml"], "output_dir", /expected a folder, got a file/);
    expect(await readFile(join(dir, "a-file"), "utf8")).toBe("not a folder\n");
  });

  it("refuses a tokenizer with more tokens than the model's vocab_size", async () => {
    await mkdir(join(dir, "small-model"));
    await writeFile(
      join(dir, "small-model", "config.json"),
      `{"model_type":"llama","vocab_size":${vocab - 1}}\n`,
    );
    await writeConfig(
      "vocab.yaml",
      `model: ./small-model\ntokenizer: ./model\noutput_dir: ./vocab-run\nstages:\n  - kind: x\n    module: ${JSON.stringify(COUNTING)}\n`,
    );
    await refused(
      ["run", "vocab.yaml", "--dry-run"],
      "tokenizer",
      new RegExp(`the tokenizer has ${vocab} tokens but the model's vocab_size is ${vocab - 1}`),
    );
  });

  it("a run whose stage folder exists but was not made by it refuses to start and deletes nothing", async () => {
    await mkdir(join(dir, "shared-run", "01-x"), { recursive: true });
    await writeFile(join(dir, "shared-run", "01-x", "keep.txt"), "mine\n");
    await writeConfig(
      "foreign.yaml",
      `model: ./model\noutput_dir: ./shared-run\nstages:\n  - kind: x\n    module: ${JSON.stringify(COUNTING)}\n    steps: 1\n    ms: 1\n`,
    );
    await refused(["run", "foreign.yaml"], "stages[0]", /exists and no earlier run of this pipeline made it/);
    expect(await readFile(join(dir, "shared-run", "01-x", "keep.txt"), "utf8")).toBe("mine\n");
    expect(existsSync(join(dir, "shared-run", "manifest.json"))).toBe(false);
  });

  it("suggests the key meant for an unknown top-level key", async () => {
    await writeConfig("typo.yaml", "model: ./model\nouput_dir: ./x\nstages:\n  - kind: merge\n");
    await refused(
      ["run", "typo.yaml", "--dry-run"],
      "ouput_dir",
      /unknown key "ouput_dir"; did you mean "output_dir"\?/,
    );
  });
});

describe("YAML errors name file, line and column", () => {
  it("a syntax error", async () => {
    const file = await writeConfig("syntax.yaml", "model: ./model\nstages:\n  - kind: cpt\n   data: x\n");
    const err = await loadPipelineConfig(file).catch((e: unknown) => e);
    expect(isHippoError(err, "INVALID_FORMAT")).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`^${file}:4: invalid YAML at line 4, column 1: `));
  });

  it("an alias bomb gets the same clear error, not a raw ReferenceError", async () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x]",
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]",
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]",
      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]",
      "stages: [*e]",
      "",
    ].join("\n");
    const file = await writeConfig("bomb.yaml", bomb);
    const err = await loadPipelineConfig(file).catch((e: unknown) => e);
    expect(isHippoError(err, "INVALID_FORMAT")).toBe(true);
    expect((err as Error).message).toMatch(
      new RegExp(`^${file}:2: invalid YAML at line 2, column 8: .*at most 100 alias expansions`),
    );
    const r = await hippo("run", "bomb.yaml", "--dry-run");
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^hippo: .*bomb\.yaml:2: invalid YAML at line 2, column 8: /);
    expect(r.stderr).not.toContain("ReferenceError");
  });
});
