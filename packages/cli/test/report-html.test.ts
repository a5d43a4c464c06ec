/**
 * What `hippo report` gathers for its charts and what the HTML says about the numbers, on run folders written
 * by hand (no model is trained): TRL's log names from metrics.jsonl or trainer_state.json, the base model
 * described from its config.json and safetensors header, the miniature told apart from other runs, samples
 * counted past the embedding cap, and the axis arithmetic of the charts. The rendered page itself is checked in
 * headless Chromium by test/miniature.test.ts.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeSafetensors } from "@hippocrates/safetensors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collectReport } from "../src/report/collect.js";
import { fmt, niceTicks, paramCount, renderHtmlReport, tickLabels } from "../src/report/html.js";
import { formatReportTable } from "../src/report/table.js";
import { makeTempDir, removeTempDir } from "./helpers/cli.js";
import { writeRunManifest } from "./helpers/report.js";

let dir: string;
beforeAll(async () => {
  dir = await makeTempDir("cli-report-html");
});
afterAll(() => removeTempDir(dir));

const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;

/** A base model folder: config.json and a safetensors file of 2 tensors (4x8 + 8 = 40 parameters). */
async function baseModel(path: string): Promise<void> {
  await mkdir(path, { recursive: true });
  await writeFile(
    join(path, "config.json"),
    JSON.stringify({ model_type: "llama", hidden_size: 8, num_hidden_layers: 1, vocab_size: 4 }),
  );
  await writeSafetensors(join(path, "model.safetensors"), {
    "model.embed_tokens.weight": { dtype: "F32", shape: [4, 8], data: new Float32Array(32) },
    "model.norm.weight": { dtype: "F32", shape: [8], data: new Float32Array(8) },
  });
}

/** The DPO stage's training log entries, under TRL's DPOTrainer names. */
const DPO_TRAIN_LOG = [
  {
    step: 1,
    loss: Math.LN2,
    learning_rate: 5e-4,
    "rewards/chosen": 0,
    "rewards/rejected": 0,
    "rewards/margins": 0,
    "rewards/accuracies": 0,
  },
  {
    step: 2,
    loss: 0.6913,
    learning_rate: 2.5e-4,
    "rewards/chosen": 0.002,
    "rewards/rejected": -0.001,
    "rewards/margins": 0.003,
    "rewards/accuracies": 0.75,
  },
] as const;

/**
 * A run: base -> sft (trainer_state.json only) -> dpo (metrics.jsonl with TRL's DPO keys and an eval entry)
 * -> eval on `task` with `samples` logged samples.
 */
async function runFolder(name: string, task: string, samples: number): Promise<string> {
  const root = join(dir, name);
  const runDir = join(root, "run");
  await baseModel(join(root, "base-model"));
  const sftDir = join(runDir, "01-sft");
  const dpoDir = join(runDir, "02-dpo");
  const evalDir = join(runDir, "03-eval");
  for (const d of [sftDir, dpoDir, evalDir]) await mkdir(d, { recursive: true });
  await writeFile(
    join(sftDir, "trainer_state.json"),
    JSON.stringify({
      global_step: 2,
      log_history: [
        { step: 1, epoch: 0.5, loss: 2.5, learning_rate: 2e-4 },
        { step: 2, epoch: 1, loss: 2.25, learning_rate: 1e-4 },
      ],
    }),
  );
  await writeFile(
    join(dpoDir, "metrics.jsonl"),
    jsonl([...DPO_TRAIN_LOG, { step: 2, epoch: 1, eval_loss: 0.692 }]),
  );
  await writeFile(
    join(evalDir, "results.json"),
    JSON.stringify({
      results: { [task]: { "acc,none": 0.6, "acc_stderr,none": 0.1 } },
      "n-samples": { [task]: { original: samples, effective: samples } },
    }),
  );
  await writeFile(
    join(evalDir, `samples_${task}.jsonl`),
    jsonl(
      Array.from({ length: samples }, (_, i) => ({
        doc_id: i,
        arguments: {
          gen_args_0: { arg_0: `Q${i}`, arg_1: " A" },
          gen_args_1: { arg_0: `Q${i}`, arg_1: " B" },
        },
        filtered_resps: [
          [-1, false],
          [-2, false],
        ],
        hippo: { gold: 0, task },
      })),
    ),
  );
  const stage = (
    id: string,
    kind: string,
    from: string,
    outputDir: string,
    files: Record<string, string>,
  ) => ({
    id,
    kind,
    from,
    base: "base",
    fingerprint: "x",
    status: "done",
    outputDir,
    attempts: 1,
    seconds: 1.5,
    input: { kind: "hf-model", path: from === "base" ? join(root, "base-model") : outputDir },
    output: { model: { kind: "hf-model", path: outputDir }, metrics: { global_step: 2 }, files },
  });
  await writeRunManifest(runDir, name, join(root, "pipeline.yaml"), [
    stage("sft", "sft", "base", sftDir, { trainer_state: "trainer_state.json" }),
    stage("dpo", "dpo", "sft", dpoDir, { metrics: "metrics.jsonl" }),
    stage("eval", "eval", "dpo", evalDir, { results: "results.json" }),
  ]);
  return root;
}

describe("hippo report: charts and what the page says", () => {
  it("reads the learning rate and DPO's rewards under TRL's names, from metrics.jsonl or log_history", async () => {
    const root = await runFolder("logs", "medqa_usmle", 2);
    const data = await collectReport(join(root, "run"));
    expect(data.curves).toEqual([
      {
        stage: "sft",
        kind: "sft",
        points: [
          { step: 1, loss: 2.5, learning_rate: 2e-4 },
          { step: 2, loss: 2.25, learning_rate: 1e-4 },
        ],
      },
      {
        stage: "dpo",
        kind: "dpo",
        points: [
          DPO_TRAIN_LOG[0],
          // The eval entry of step 2 is merged into the train entry of the same step.
          { ...DPO_TRAIN_LOG[1], eval_loss: 0.692 },
        ],
      },
    ]);
    const html = renderHtmlReport(data);
    for (const metric of ["loss", "learning_rate", "rewards", "rewards/margins", "rewards/accuracies"])
      expect(html).toContain(`data-metric="${metric}"`);
    expect(html).toContain('data-series="chosen" data-points="2"');
    expect(html).toContain('data-series="rejected" data-points="2"');
    expect(html).toContain('data-series="eval loss" data-points="1"');
  });

  it("says what model a run that is not the miniature used, and what the paper's columns average", async () => {
    const root = await runFolder("hippo-7b", "medqa_usmle", 2);
    const data = await collectReport(join(root, "run"));
    expect(data.miniature).toBeUndefined();
    expect(data.models).toEqual([
      {
        name: "base",
        path: join(root, "base-model"),
        modelType: "llama",
        hiddenSize: 8,
        layers: 1,
        vocabSize: 4,
        parameters: 40,
      },
    ]);
    const html = renderHtmlReport(data);
    expect(html).not.toContain("This is the miniature");
    expect(html).toContain(
      `<code>${join(root, "base-model")}</code> (llama, 40 parameters, hidden 8, 1 layers`,
    );
    expect(html).toContain("The paper's columns are its 7B models");
    expect(html).toContain(
      "This run's average is over the tasks it evaluated (medqa_usmle): compare it with the paper's only where it evaluated all six",
    );
    expect(formatReportTable(data)).not.toContain("The miniature");
  });

  it("marks the miniature's numbers as a demonstration on invented facts, in the HTML and the table", async () => {
    const root = await runFolder("miniature", "miniature_mcq", 2);
    await mkdir(join(root, "data"), { recursive: true });
    await writeFile(
      join(root, "data", "knowledge-base.json"),
      JSON.stringify({ seed: 1, diseases: [{ name: "a" }, { name: "b" }, { name: "c" }] }),
    );
    const data = await collectReport(join(root, "run"));
    expect(data.miniature).toEqual({ diseases: 3 });
    const html = renderHtmlReport(data);
    const caveat = html.slice(html.indexOf('id="caveat"'), html.indexOf('id="accuracy"'));
    expect(caveat).toContain("This is the miniature, a demonstration: not a medical result.");
    expect(caveat).toContain("40-parameter random llama (hidden 8, 1 layers)");
    expect(caveat).toContain("an invented knowledge base (3 fictional diseases");
    expect(caveat).toContain("tested on 2 held-out questions");
    expect(caveat).toContain("shown beside them for the per-stage trend only");
    expect(html).toContain("this run (miniature, invented facts)");
    expect(formatReportTable(data)).toContain("(The miniature: a small random model");
  });

  it("counts every logged sample and says how many the page holds when --max-samples caps it", async () => {
    const root = await runFolder("capped", "medqa_usmle", 5);
    const data = await collectReport(join(root, "run"), { maxSamples: 3 });
    expect(data.samples.length).toBe(3);
    expect(data.samplesTotal).toBe(5);
    expect(renderHtmlReport(data)).toContain("The report holds 3 of the run's 5 logged samples");
    const all = await collectReport(join(root, "run"));
    expect(all.samples.length).toBe(5);
    expect(renderHtmlReport(all)).not.toContain('id="samples-capped"');
  });

  it("fits axis ticks to the data with as many decimals as the step needs", () => {
    // DPO's loss from ln 2 down to 0.6913 with a 5% margin: ticks every 0.0005.
    const lo = 0.6913 - 0.05 * (Math.LN2 - 0.6913);
    const hi = Math.LN2 + 0.05 * (Math.LN2 - 0.6913);
    const ticks = niceTicks(lo, hi, 5);
    expect(tickLabels(ticks)).toEqual(["0.6910", "0.6915", "0.6920", "0.6925", "0.6930", "0.6935"]);
    expect(tickLabels(niceTicks(0, 5e-4, 5))).toEqual(["0", "1e-4", "2e-4", "3e-4", "4e-4", "5e-4"]);
    expect(tickLabels(niceTicks(0, 3e-3, 5))).toEqual(["0", "1e-3", "2e-3", "3e-3"]);
    expect(tickLabels(niceTicks(1.2, 5.6, 5))).toEqual(["1", "2", "3", "4", "5", "6"]);
    expect(tickLabels(niceTicks(0, 1, 4))).toEqual(["0", "0.5", "1.0"]);
    expect(niceTicks(1, 180, 6)).toEqual([0, 50, 100, 150, 200]);
    // Integers (a step count) print as integers in the stage table.
    expect(fmt(64)).toBe("64");
    expect(fmt(0.6913)).toBe("0.691");
    expect(paramCount(361_472)).toBe("361K");
    expect(paramCount(6_738_415_616)).toBe("6.74B");
  });
});
