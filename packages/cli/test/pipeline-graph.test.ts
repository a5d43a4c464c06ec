/**
 * Pipelines that branch and the one registration path for stages, on users' stages (no model is trained):
 * stages take their input by `from:`, branches share the stages they have in common, a change re-runs the
 * changed stage and what takes its model and nothing else, named base models bring their own tokenizers, and
 * a user's stage registered under a built-in's kind runs in its place.
 */
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPipelineConfig } from "../src/config/load.js";
import { readManifest } from "../src/pipeline/manifest.js";
import { createStageRegistry } from "../src/pipeline/registry.js";
import { branches, describePlan, runPipeline } from "../src/pipeline/runner.js";
import { sft as userSft } from "./fixtures/user-stages.js";
import { makeTempDir, removeTempDir, writeConfigFile, writeStubModelFolder } from "./helpers/cli.js";

const COUNTING = fileURLToPath(new URL("./fixtures/counting-stage.ts", import.meta.url));
const USER = fileURLToPath(new URL("./fixtures/user-stages.ts", import.meta.url));

let dir: string;

beforeAll(async () => {
  dir = await makeTempDir("cli-graph");
  await writeStubModelFolder(join(dir, "model"));
  await writeStubModelFolder(join(dir, "other-model"));
  await writeFile(join(dir, "train.jsonl"), '{"messages":[]}\n');
});
afterAll(() => removeTempDir(dir));

const writeConfig = (name: string, yaml: string) => writeConfigFile(dir, name, yaml);

const readJson = async (...p: string[]) => JSON.parse(await readFile(join(...p), "utf8"));

/** base -> a -> b -> note-b -> e, base -> c, other -> d. */
function tree(o: { a?: number; c?: number; note?: string } = {}): string {
  return `name: tree
model: ./model
models:
  other: { model: ./other-model }
output_dir: ./tree-run
stage_modules: [${JSON.stringify(USER)}]
stages:
  - { kind: counting, name: a, module: ${JSON.stringify(COUNTING)}, steps: ${o.a ?? 1}, ms: 1 }
  - { kind: counting, name: b, module: ${JSON.stringify(COUNTING)}, steps: 2, ms: 1 }
  - { kind: note, name: note-b, text: ${JSON.stringify(o.note ?? "first")} }
  - { kind: counting, name: e, module: ${JSON.stringify(COUNTING)}, steps: 1, ms: 1 }
  - { kind: counting, name: c, from: base, module: ${JSON.stringify(COUNTING)}, steps: ${o.c ?? 3}, ms: 1 }
  - { kind: counting, name: d, from: other, module: ${JSON.stringify(COUNTING)}, steps: 1, ms: 1 }
`;
}

describe("pipelines that branch", () => {
  it("runs each stage on its input, records the graph, and a re-run reuses every finished stage", async () => {
    const config = await loadPipelineConfig(await writeConfig("tree.yaml", tree()));
    expect(config.stages.map((s) => [s.id, s.from, s.base])).toEqual([
      ["a", "base", "base"],
      ["b", "a", "base"],
      ["note-b", "b", "base"],
      ["e", "note-b", "base"],
      ["c", "base", "base"],
      ["d", "other", "other"],
    ]);
    expect(branches(config).map((b) => b.join(" -> "))).toEqual([
      "base -> a -> b -> note-b -> e",
      "base -> c",
      "other -> d",
    ]);
    const first = await runPipeline(config);
    expect(first.ran).toEqual(["a", "b", "note-b", "e", "c", "d"]);
    const runDir = join(dir, "tree-run");
    const m = await readManifest(runDir);
    const rec = (id: string) => m?.stages.find((s) => s.id === id);
    expect(m?.stages.map((s) => [s.id, s.from, s.base, s.status])).toEqual([
      ["a", "base", "base", "done"],
      ["b", "a", "base", "done"],
      ["note-b", "b", "base", "done"],
      ["e", "note-b", "base", "done"],
      ["c", "base", "base", "done"],
      ["d", "other", "other", "done"],
    ]);
    // Inputs: b takes a's model; note-b passes b's on to e; c starts again from the base model.
    expect(rec("b")?.input).toEqual(rec("a")?.output?.model);
    expect(rec("e")?.input).toEqual(rec("b")?.output?.model);
    expect(rec("c")?.input).toEqual({ kind: "hf-model", path: join(dir, "model") });
    // Each branch gets its base model's tokenizer (here the model folders themselves).
    expect((await readJson(rec("a")?.outputDir ?? "", "context.json")).tokenizer).toBe(join(dir, "model"));
    expect((await readJson(rec("d")?.outputDir ?? "", "context.json")).tokenizer).toBe(
      join(dir, "other-model"),
    );
    expect((await readJson(rec("d")?.outputDir ?? "", "context.json")).input.path).toBe(
      join(dir, "other-model"),
    );

    const again = await runPipeline(await loadPipelineConfig(join(dir, "tree.yaml")));
    expect(again.ran).toEqual([]);
    expect(again.skipped).toEqual(["a", "b", "note-b", "e", "c", "d"]);
  });

  it("a changed stage re-runs with the stages that take its model, and no other branch", async () => {
    // c is a leaf of its own branch: only c runs.
    const c = await runPipeline(await loadPipelineConfig(await writeConfig("tree.yaml", tree({ c: 4 }))));
    expect(c.ran).toEqual(["c"]);
    // a is under b, note-b and e: they run again; c and d (other branches) are reused.
    const a = await runPipeline(
      await loadPipelineConfig(await writeConfig("tree.yaml", tree({ a: 2, c: 4 }))),
    );
    expect(a.ran).toEqual(["a", "b", "note-b", "e"]);
    expect(a.skipped).toEqual(["c", "d"]);
    // note-b passes its model through: a change to it re-runs it alone, not e.
    const plan = await describePlan(
      await loadPipelineConfig(await writeConfig("tree.yaml", tree({ a: 2, c: 4, note: "second" }))),
    );
    expect(plan).toContain("3. note-b [note] to run again (settings or input changed)");
    expect(plan).toContain("4. e [counting, module");
    expect(plan).toMatch(/4\. e \[counting, module .*\] done earlier \(reused\)/);
    const note = await runPipeline(await loadPipelineConfig(join(dir, "tree.yaml")));
    expect(note.ran).toEqual(["note-b"]);
    expect((await readJson(join(dir, "tree-run", "03-note-b", "note.json"))).text).toBe("second");
  });

  it("--dry-run shows each stage's input and the branches", async () => {
    const plan = await describePlan(await loadPipelineConfig(join(dir, "tree.yaml")));
    expect(plan).toContain(`base = ${join(dir, "model")}`);
    expect(plan).toContain(`other = ${join(dir, "other-model")}`);
    expect(plan).toContain("from other; steps=1 ms=1");
    expect(plan).toContain("branches:\n  base -> a -> b -> note-b -> e\n  base -> c\n  other -> d");
  });

  it("refuses a `from:` that names a later stage or nothing, suggesting the name meant", async () => {
    const later = await writeConfig(
      "later.yaml",
      `model: ./model\nstages:\n  - { kind: note, from: x, text: a }\n  - { kind: note, name: x, text: b }\n`,
    );
    await expect(loadPipelineConfig(later, { registry: await userRegistry() })).rejects.toThrow(
      /stages\[0\]\.from: "x" is a later stage/,
    );
    const typo = await writeConfig(
      "typo.yaml",
      `model: ./model\nmodels:\n  mistral: { model: ./other-model }\nstages:\n  - { kind: note, from: mistrl, text: a }\n`,
    );
    await expect(loadPipelineConfig(typo, { registry: await userRegistry() })).rejects.toThrow(
      /stages\[0\]\.from: unknown stage or model "mistrl"; did you mean "mistral"\?/,
    );
  });
});

async function userRegistry() {
  const { note } = await import("./fixtures/user-stages.js");
  return createStageRegistry([note]);
}

describe("one registration path for stages", () => {
  const sftConfig = (extra = "") =>
    `model: ./model\noutput_dir: ./user-sft-run${extra}\nstages:\n  - kind: sft\n    data: ./train.jsonl\n    note: mine\n`;

  it("a stage module's stage registered under a built-in's kind runs in its place", async () => {
    const file = await writeConfig(
      "user-sft.yaml",
      `stage_modules: [${JSON.stringify(USER)}]\n${sftConfig()}`,
    );
    const config = await loadPipelineConfig(file);
    const result = await runPipeline(config);
    expect(result.ran).toEqual(["sft"]);
    const rec = result.manifest.stages[0];
    // The user's settings schema took `note`, which the built-in SFT stage does not know.
    expect(await readJson(rec?.outputDir ?? "", "user-sft.json")).toEqual({
      data: "./train.jsonl",
      note: "mine",
    });
    expect(rec?.output?.metrics).toEqual({ user_sft: 1 });
  });

  it("a registry made in code takes a built-in's kind the same way", async () => {
    const file = await writeConfig("user-sft-code.yaml", sftConfig("-code"));
    const config = await loadPipelineConfig(file, { registry: createStageRegistry([userSft]) });
    const result = await runPipeline(config);
    expect(result.manifest.stages[0]?.output?.metrics).toEqual({ user_sft: 1 });
    expect(existsSync(join(result.manifest.stages[0]?.outputDir ?? "", "user-sft.json"))).toBe(true);
  });

  it("without the user's module the built-in SFT stage's schema applies to the same entry", async () => {
    const file = await writeConfig("builtin-sft.yaml", sftConfig("-builtin"));
    await expect(loadPipelineConfig(file)).rejects.toThrow(/stages\[0\]\.note: unknown key "note"/);
  });

  it("validates a user stage's settings with its own schema: key paths, types, did-you-mean", async () => {
    const file = await writeConfig(
      "bad-settings.yaml",
      `model: ./model\nstages:\n  - kind: counting\n    module: ${JSON.stringify(COUNTING)}\n    step: 2\n  - kind: counting\n    name: two\n    module: ${JSON.stringify(COUNTING)}\n    steps: two\n`,
    );
    const err = await loadPipelineConfig(file).catch((e: Error) => e);
    expect((err as Error).message).toContain('stages[0].step: unknown key "step"; did you mean "steps"?');
    expect((err as Error).message).toContain("stages[1].steps: expected number, got string");
  });
});
