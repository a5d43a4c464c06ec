import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { isHippoError } from "@hippocrates/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPipelineConfig } from "../src/config/load.js";
import { readManifest } from "../src/pipeline/manifest.js";
import { describePlan, runPipeline } from "../src/pipeline/runner.js";
import { HIPPO, makeTempDir, removeTempDir, writeConfigFile, writeStubModelFolder } from "./helpers/cli.js";

const STAGE = fileURLToPath(new URL("./fixtures/counting-stage.ts", import.meta.url));

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir("cli-pipeline");
  // A model folder the pre-flight checks accept: config.json with vocab_size, and a tokenizer that fits it.
  await writeStubModelFolder(join(dir, "model"));
  await writeFile(join(dir, "train.jsonl"), '{"id":"1","source":"t","text":"hello"}\n');
});
afterAll(() => removeTempDir(dir));

const writeConfig = (name: string, yaml: string) => writeConfigFile(dir, name, yaml);

async function expectConfigError(yaml: string, key: string, text: RegExp): Promise<string> {
  const file = await writeConfig("bad.yaml", yaml);
  const before = readdirSync(dir).sort();
  const err = await loadPipelineConfig(file).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isHippoError(err, "INVALID_CONFIG")).toBe(true);
  const message = (err as Error).message;
  expect(message).toContain(key);
  expect(message).toMatch(text);
  // Nothing written: the folder holds exactly what it held.
  expect(readdirSync(dir).sort()).toEqual(before);
  return message;
}

describe("pipeline config validation", () => {
  it("names the key and the expected type of a wrong value", async () => {
    const msg = await expectConfigError(
      "model: ./model\nstages:\n  - kind: cpt\n    data: ./train.jsonl\n  - kind: sft\n    data: ./train.jsonl\n    lr: fast\n",
      "stages[1].lr",
      /expected number, got string/,
    );
    expect(msg).toBe(
      `${join(dir, "bad.yaml")}, key "stages[1].lr": invalid pipeline config: stages[1].lr: expected number, got string`,
    );
  });

  it("rejects an unknown stage kind", async () => {
    await expectConfigError(
      "model: ./model\nstages:\n  - kind: distill\n",
      "stages[0].kind",
      /unknown stage kind "distill"/,
    );
  });

  it("rejects a missing or absent model path", async () => {
    await expectConfigError("stages:\n  - kind: merge\n", "model", /missing \(expected string\)/);
    await expectConfigError("model: ./nowhere\nstages:\n  - kind: merge\n", "model", /path does not exist/);
  });

  it("rejects unknown keys, missing data files and YAML syntax errors", async () => {
    await expectConfigError(
      "model: ./model\nstages:\n  - kind: sft\n    data: ./train.jsonl\n    learning_rat: 1\n",
      "stages[0].learning_rat",
      /unknown key "learning_rat"; did you mean "learning_rate"\?/,
    );
    await expectConfigError(
      "model: ./model\nstages:\n  - kind: cpt\n    data: ./missing.jsonl\n",
      "stages[0].data",
      // The stage's own check names the file; the data package words its absence as the OS does.
      /missing\.jsonl: .*(path does not exist|no such file or directory)/,
    );
    const file = await writeConfig("syntax.yaml", "model: ./model\nstages: [\n");
    await expect(loadPipelineConfig(file)).rejects.toThrow(/invalid YAML/);
  });

  it("the CLI prints one line naming the key and exits 2, writing nothing", async () => {
    const file = await writeConfig(
      "bad-cli.yaml",
      "model: ./model\noutput_dir: ./never\nstages:\n  - kind: eval\n    tasks: medqa\n",
    );
    const r = spawnSync(process.execPath, [HIPPO, "run", file], { encoding: "utf8" });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("stages[0].tasks: expected array, got string");
    expect(existsSync(join(dir, "never"))).toBe(false);
  });

  it("--dry-run prints the plan and writes nothing", async () => {
    const file = await writeConfig(
      "plan.yaml",
      `model: ./model\noutput_dir: ./plan-run\nstages:\n  - kind: counting\n    module: ${STAGE}\n    steps: 2\n  - kind: merge\n  - kind: eval\n    tasks: [medqa_usmle]\n    limit: 10\n`,
    );
    const r = spawnSync(process.execPath, [HIPPO, "run", file, "--dry-run"], { encoding: "utf8" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("1. counting [counting, module");
    expect(r.stdout).toContain("3. eval [eval] to run");
    expect(existsSync(join(dir, "plan-run"))).toBe(false);
    expect(await describePlan(await loadPipelineConfig(file))).toContain("limit=10");
  });
});

describe("pipeline runner", () => {
  it("runs user stages in order, records the manifest, and skips finished stages on a re-run", async () => {
    const file = await writeConfig(
      "two.yaml",
      `name: two\nmodel: ./model\noutput_dir: ./two-run\nseed: 3\nstages:\n  - kind: a\n    module: ${STAGE}\n    steps: 2\n    ms: 1\n  - kind: b\n    module: ${STAGE}\n    steps: 3\n    ms: 1\n`,
    );
    const config = await loadPipelineConfig(file);
    const first = await runPipeline(config);
    expect(first.ran).toEqual(["a", "b"]);
    const m = await readManifest(join(dir, "two-run"));
    expect(m?.status).toBe("done");
    expect(m?.stages.map((s) => [s.id, s.status, s.attempts])).toEqual([
      ["a", "done", 1],
      ["b", "done", 1],
    ]);
    // b's input is a's output.
    expect(m?.stages[1]?.input?.path).toBe(m?.stages[0]?.output?.model.path);
    expect(m?.stages[1]?.output?.metrics).toEqual({ steps: 3 });
    expect(m?.packages["@hippocrates/cli"]).toBe("0.0.0");
    const again = await runPipeline(config);
    expect(again.ran).toEqual([]);
    expect(again.skipped).toEqual(["a", "b"]);
    // A changed setting re-runs that stage and every later one.
    const changed = await writeConfig(
      "two.yaml",
      `name: two\nmodel: ./model\noutput_dir: ./two-run\nseed: 3\nstages:\n  - kind: a\n    module: ${STAGE}\n    steps: 2\n    ms: 1\n  - kind: b\n    module: ${STAGE}\n    steps: 4\n    ms: 1\n`,
    );
    const third = await runPipeline(await loadPipelineConfig(changed));
    expect(third.skipped).toEqual(["a"]);
    expect(third.ran).toEqual(["b"]);
  });

  it("a module without a PipelineStage export is a config error before anything is written", async () => {
    const bad = join(dir, "not-a-stage.mjs");
    await writeFile(bad, "export const x = 1;\n");
    const file = await writeConfig(
      "badmod.yaml",
      `model: ./model\noutput_dir: ./badmod-run\nstages:\n  - kind: x\n    module: ./not-a-stage.mjs\n`,
    );
    await expect(loadPipelineConfig(file).then((c) => runPipeline(c))).rejects.toThrow(
      /stages\[0\]\.module.*exports no PipelineStage/,
    );
    expect(existsSync(join(dir, "badmod-run"))).toBe(false);
  });

  it("killed with SIGKILL mid-stage, a re-run resumes that stage and does not redo finished ones", async () => {
    const file = await writeConfig(
      "kill.yaml",
      `name: kill\nmodel: ./model\noutput_dir: ./kill-run\nstages:\n  - kind: first\n    module: ${STAGE}\n    steps: 2\n    ms: 1\n  - kind: slow\n    module: ${STAGE}\n    steps: 40\n    ms: 100\n`,
    );
    const runDir = join(dir, "kill-run");
    // The slow stage freezes itself after step 5 (HIPPO_TEST_FREEZE_AT, read by the stage fixture): the kill
    // lands there however loaded the machine is (a poll of steps.log could see the stage finish first).
    const child = spawn(process.execPath, [HIPPO, "run", file, "--no-progress"], {
      stdio: ["ignore", "pipe", "ignore"],
      env: { ...process.env, HIPPO_TEST_FREEZE_AT: "5" },
    });
    const stepsLog = join(runDir, "02-slow", "steps.log");
    let out = "";
    child.stdout.on("data", (d: Buffer) => {
      out += d;
      // The first stage (2 steps) never reaches step 5; the slow one freezes there.
      if (out.includes("FROZEN 5\n")) child.kill("SIGKILL");
    });
    await new Promise((r) => child.once("exit", r));
    expect(out).toContain("FROZEN 5");
    const killed = await readManifest(runDir);
    expect(killed?.stages.map((s) => s.status)).toEqual(["done", "running"]);
    const stepsBefore = (await readFile(stepsLog, "utf8")).trim().split("\n").length;
    expect(stepsBefore).toBeLessThan(40);

    const r = spawnSync(process.execPath, [HIPPO, "run", file, "--no-progress"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("[first] done in an earlier run: skipped");
    expect(r.stderr).toContain("[slow] resuming interrupted stage");
    const done = await readManifest(runDir);
    expect(done?.status).toBe("done");
    expect(done?.stages.map((s) => [s.status, s.attempts])).toEqual([
      ["done", 1],
      ["done", 2],
    ]);
    // The first stage ran once; the slow one continued from its checkpoint: steps 1..40, each once
    // (at most the step being written when the kill came is repeated).
    expect((await readFile(join(runDir, "01-first", "steps.log"), "utf8")).trim().split("\n")).toEqual([
      "1",
      "2",
    ]);
    const steps = (await readFile(stepsLog, "utf8")).trim().split("\n").map(Number);
    expect(new Set(steps).size).toBe(40);
    expect(steps.length).toBeLessThanOrEqual(41);
  });

  it("stopped with SIGINT mid-stage, the stage is recorded interrupted and a re-run resumes it", async () => {
    const file = await writeConfig(
      "int.yaml",
      `name: int\nmodel: ./model\noutput_dir: ./int-run\nstages:\n  - kind: slow\n    module: ${STAGE}\n    steps: 40\n    ms: 100\n`,
    );
    const runDir = join(dir, "int-run");
    const child = spawn(process.execPath, [HIPPO, "run", file, "--no-progress"], { stdio: "ignore" });
    const stepsLog = join(runDir, "01-slow", "steps.log");
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const n = existsSync(stepsLog) ? (await readFile(stepsLog, "utf8")).trim().split("\n").length : 0;
      if (n >= 5) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGINT");
    const code = await new Promise((r) => child.once("exit", r));
    expect(code).not.toBe(0);
    const stopped = await readManifest(runDir);
    expect(stopped?.stages.map((s) => s.status)).toEqual(["interrupted"]);
    expect(stopped?.status).toBe("failed");

    const r = spawnSync(process.execPath, [HIPPO, "run", file, "--no-progress"], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain("[slow] resuming interrupted stage");
    const steps = (await readFile(stepsLog, "utf8")).trim().split("\n").map(Number);
    expect(steps).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect((await readManifest(runDir))?.stages.map((s) => [s.status, s.attempts])).toEqual([["done", 2]]);
  });
});
