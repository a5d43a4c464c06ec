/**
 * `hippo report` names each eval's row by the training stages on its branch (the paper's rows: base, +CPT,
 * +SFT, +CPT+SFT, +CPT+SFT+DPO), prints them in the paper's order beside its per-stage averages, prefixes the
 * base model's name when a run has several, and reads eval results in lm-evaluation-harness 0.4's metric keys
 * (`"acc,none"`) as well as the plain ones. The run folder here is written by hand (no model is trained).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectReport, readEvalResults } from "../src/report/collect.js";
import { formatReportTable } from "../src/report/table.js";
import { makeTempDir, removeTempDir } from "./helpers/cli.js";
import { writeRunManifest } from "./helpers/report.js";

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir("cli-report");
});
afterAll(() => removeTempDir(dir));

interface Stage {
  id: string;
  kind: string;
  from: string;
  base: string;
  acc?: number;
}

/** A run folder with a manifest of `stages`; each eval stage gets a results file with its `acc`. */
async function runFolder(name: string, stages: Stage[], keys: "0.4" | "plain" = "0.4"): Promise<string> {
  const runDir = join(dir, name);
  const records = [];
  for (const [i, s] of stages.entries()) {
    const outputDir = join(runDir, `${String(i + 1).padStart(2, "0")}-${s.id}`);
    await mkdir(outputDir, { recursive: true });
    const files: Record<string, string> = {};
    if (s.kind === "eval") {
      const m =
        keys === "0.4" ? { "acc,none": s.acc, "acc_stderr,none": 0.01 } : { acc: s.acc, acc_stderr: 0.01 };
      await writeFile(join(outputDir, "results.json"), JSON.stringify({ results: { medqa_usmle: m } }));
      files.results = "results.json";
    }
    records.push({
      id: s.id,
      kind: s.kind,
      from: s.from,
      base: s.base,
      fingerprint: "x",
      status: "done",
      outputDir,
      attempts: 1,
      output: { model: { kind: "hf-model", path: outputDir }, metrics: {}, files },
    });
  }
  await writeRunManifest(runDir, name, "p.yaml", records);
  return runDir;
}

describe("hippo report", () => {
  it("names evals by their branch's training stages and prints the paper's rows in its order", async () => {
    const runDir = await runFolder("branches", [
      { id: "eval-base", kind: "eval", from: "base", base: "base", acc: 0.25 },
      { id: "cpt", kind: "cpt", from: "eval-base", base: "base" },
      { id: "eval-cpt", kind: "eval", from: "cpt", base: "base", acc: 0.375 },
      { id: "sft", kind: "sft", from: "eval-cpt", base: "base" },
      { id: "eval-sft", kind: "eval", from: "sft", base: "base", acc: 0.9875 },
      { id: "dpo", kind: "dpo", from: "eval-sft", base: "base" },
      { id: "merge", kind: "merge", from: "dpo", base: "base" },
      { id: "eval-dpo", kind: "eval", from: "merge", base: "base", acc: 0.9 },
      { id: "sft-base", kind: "sft", from: "base", base: "base" },
      { id: "eval-sft-base", kind: "eval", from: "sft-base", base: "base", acc: 0.5 },
    ]);
    const data = await collectReport(runDir);
    expect(data.evals.map((e) => [e.label, e.stage, e.average])).toEqual([
      ["base", "eval-base", 0.25],
      ["+CPT", "eval-cpt", 0.375],
      ["+SFT", "eval-sft-base", 0.5],
      ["+CPT+SFT", "eval-sft", 0.9875],
      ["+CPT+SFT+DPO", "eval-dpo", 0.9],
    ]);
    const table = formatReportTable(data);
    // Ours beside the paper's per-stage averages (Llama-2 7B, Mistral 7B).
    expect(table).toMatch(/\| \+SFT +\| +50\.0 \| +50\.3 \| +61\.6 \|/);
    expect(table).toMatch(/\| \+CPT\+SFT +\| +98\.8 \| +53\.0 \| +61\.1 \|/);
    expect(table.indexOf("| +CPT ")).toBeLessThan(table.indexOf("| +SFT "));
    expect(table.indexOf("| +SFT ")).toBeLessThan(table.indexOf("| +CPT+SFT "));
  });

  it("prefixes each row with its base model when a run has several", async () => {
    const runDir = await runFolder("two-bases", [
      { id: "lambda-cpt", kind: "cpt", from: "base", base: "base" },
      { id: "lambda-sft", kind: "sft", from: "lambda-cpt", base: "base" },
      { id: "eval-lambda", kind: "eval", from: "lambda-sft", base: "base", acc: 0.53 },
      { id: "mu-sft", kind: "sft", from: "mistral", base: "mistral" },
      { id: "eval-mu", kind: "eval", from: "mu-sft", base: "mistral", acc: 0.616 },
    ]);
    const data = await collectReport(runDir);
    expect(data.evals.map((e) => [e.model, e.label])).toEqual([
      ["base", "+CPT+SFT"],
      ["mistral", "+SFT"],
    ]);
    const table = formatReportTable(data);
    expect(table).toMatch(/\| base +\| \+CPT\+SFT +\| +53\.0 \| +53\.0 \| +61\.1 \|/);
    expect(table).toMatch(/\| mistral +\| \+SFT +\| +61\.6 \| +50\.3 \| +61\.6 \|/);
  });

  it("reads lm-evaluation-harness 0.4 metric keys and the plain ones alike", async () => {
    const a = await runFolder("keys-04", [
      { id: "eval", kind: "eval", from: "base", base: "base", acc: 0.3 },
    ]);
    const b = await runFolder(
      "keys-plain",
      [{ id: "eval", kind: "eval", from: "base", base: "base", acc: 0.3 }],
      "plain",
    );
    for (const runDir of [a, b])
      expect(await readEvalResults(join(runDir, "01-eval", "results.json"))).toEqual({
        medqa_usmle: { acc: 0.3, stderr: 0.01 },
      });
  });
});
