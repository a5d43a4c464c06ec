/**
 * The eval stage: its settings (strict, did-you-mean), its pre-flight check (task names, task files, data_dir)
 * and a run on a model chain (a tiny random Llama with the Llama-2 vocabulary and a LoRA adapter over it),
 * loaded with @hippocrates/model's loadArtifact: the stage's metrics equal `evaluate` on the same model.
 */
import { existsSync, readdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { initBackend } from "@hippocrates/backend";
import { type ModelArtifact, type StageContext, silentProgress } from "@hippocrates/core";
import {
  addLoraAdapter,
  asScoringModel,
  createRandomModel,
  loadArtifact,
  saveAdapter,
  saveModel,
} from "@hippocrates/model";
import { loadTokenizer } from "@hippocrates/tokenizer";
import * as tf from "@tensorflow/tfjs-core";
import { beforeAll, describe, expect, it } from "vitest";
import { type EvalSettings, evalStage, evaluate, metricsFromResults } from "../src/index.js";
import { DATA_DIR, useTempDir } from "./helpers.js";
import { TINY_LLAMA2_VOCAB } from "./localModel.js";

const TOKENIZER = join(DATA_DIR, "tokenizers/llama2");
const tmp = useTempDir("hippo-eval-stage-");

async function settings(entry: unknown, stage = evalStage()) {
  const r = await stage.settings["~standard"].validate(entry);
  if (r.issues) throw new Error(r.issues.map((i) => i.message).join("; "));
  return r.value;
}

const issues = async (entry: unknown) =>
  (await evalStage().settings["~standard"].validate(entry)).issues?.map((i) => i.message) ?? [];

function context(outputDir: string): StageContext {
  return {
    outputDir,
    runDir: tmp.dir,
    baseDir: tmp.dir,
    tokenizer: TOKENIZER,
    seed: 0,
    progress: silentProgress,
    signal: new AbortController().signal,
    log: () => {},
  };
}

describe("eval stage settings and check", () => {
  it("validates the entry: defaults, strict keys with did-you-mean, the harness's limit", async () => {
    expect(await settings({ tasks: ["medqa_usmle"] })).toEqual({ tasks: ["medqa_usmle"], log_samples: true });
    expect(await issues({ tasks: ["medqa_usmle"], write_out: true, log_samples: true })).toEqual([
      "write_out is the earlier name of log_samples: give one of them",
    ]);
    expect(await issues({ tasks: ["medqa_usmle"], num_fewshots: 5 })).toEqual([
      'unknown key "num_fewshots"; did you mean "num_fewshot"?',
    ]);
    expect(await issues({ tasks: ["medqa_usmle"], limit: 1.5 })).toEqual([
      "a count (integer) or a fraction below 1",
    ]);
    expect(await issues({ tasks: [] })).toEqual(["name at least one task"]);
    const stage = evalStage({ tasks: ["pubmedqa"], profile: "current", num_fewshot: 5 });
    expect(await settings({ num_fewshot: 0 }, stage)).toEqual({
      tasks: ["pubmedqa"],
      profile: "current",
      num_fewshot: 0,
      log_samples: true,
    });
    expect(() => evalStage({ task: ["x"] } as never)).toThrow(/did you mean "tasks"/);
  });

  it("check: every task is known in the profile or a task file that parses; data_dir is a folder", async () => {
    const ctx = context(tmp.dir);
    const check = async (s: EvalSettings) => evalStage().check?.(s, ctx);
    await expect(check(await settings({ tasks: ["medqa_usmle", "multimedqa"] }))).resolves.toBeUndefined();
    await expect(check(await settings({ tasks: ["medqa_usmle", "medqa_usmel"] }))).rejects.toThrow(
      /key "tasks\[1\]": unknown task "medqa_usmel"; did you mean "medqa_usmle"\? in profile v0\.3/,
    );
    // usmle_step1 is a task of the v0.3 profile only.
    await expect(check(await settings({ tasks: ["usmle_step1"] }))).resolves.toBeUndefined();
    await expect(check(await settings({ tasks: ["usmle_step1"], profile: "current" }))).rejects.toThrow(
      /unknown task "usmle_step1".* in profile current/,
    );
    await writeFile(join(tmp.dir, "bad.task.json"), JSON.stringify({ name: "x", files: {} }));
    await expect(check(await settings({ tasks: ["bad.task.json"] }))).rejects.toThrow(
      /bad\.task\.json.*tasks\[0\]: /,
    );
    await writeFile(join(tmp.dir, "broken.json"), "{ not json");
    await expect(check(await settings({ tasks: ["broken.json"] }))).rejects.toThrow(/broken\.json/);
    await expect(check(await settings({ tasks: ["medqa_usmle"], data_dir: "nowhere" }))).rejects.toThrow(
      /key "data_dir".*not a folder/,
    );
  });
});

describe("eval stage run", () => {
  let chain: ModelArtifact;
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    const m = createRandomModel({ ...TINY_LLAMA2_VOCAB }, { seed: 7 });
    await saveModel(m, join(tmp.dir, "base"));
    // An adapter that changes the model (random B), so the chain is not the base.
    const a = addLoraAdapter(m, { r: 2, alpha: 4, targetModules: ["q_proj", "v_proj"] }, { seed: 1 });
    for (const b of a.b.values()) tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.5, "float32", 3)));
    await saveAdapter(m, join(tmp.dir, "adapter"));
    m.dispose();
    chain = {
      kind: "peft-adapter",
      path: join(tmp.dir, "adapter"),
      base: { kind: "hf-model", path: join(tmp.dir, "base") },
    };
  }, 120_000);

  it("scores the input chain: metrics equal evaluate() on loadArtifact's model; results and samples written", async () => {
    const stage = evalStage();
    const s = await settings({ tasks: ["medqa_usmle"], limit: 2, data_dir: DATA_DIR, batch_size: 1 });
    const out = await stage.run({ model: chain, config: s }, context(join(tmp.dir, "eval")));
    expect(out.model).toBe(chain);
    // lm-evaluation-harness 0.4's layout: <output_path>/<model_name_sanitized>/results_<date>.json, samples beside.
    const results = out.files.results as string;
    expect(dirname(dirname(results))).toBe(join(tmp.dir, "eval"));
    expect(basename(results)).toMatch(/^results_\d{4}-\d\d-\d\dT[\d.-]+\.json$/);
    const samples = readdirSync(dirname(results)).filter((f) => f.startsWith("samples_medqa_usmle_"));
    expect(samples).toHaveLength(1);
    expect(existsSync(join(tmp.dir, "eval", "cache"))).toBe(false);

    const lm = await loadArtifact(chain);
    const direct = await evaluate({
      model: asScoringModel(lm, { name: chain.path, batchSize: 1 }),
      tokenizer: await loadTokenizer(TOKENIZER),
      tasks: ["medqa_usmle"],
      dataDir: DATA_DIR,
      limit: 2,
      batchSize: 1,
    });
    lm.dispose();
    expect(out.metrics).toEqual(metricsFromResults(direct.results));
    expect(Object.keys(out.metrics).sort()).toEqual([
      "average/acc",
      "medqa_usmle/acc",
      "medqa_usmle/acc_norm",
    ]);
  });

  it("log_samples: false (or its earlier name write_out: false) writes the results without per-sample files", async () => {
    for (const off of [{ log_samples: false }, { write_out: false }]) {
      const s = await settings({ tasks: ["medqa_usmle"], limit: 1, data_dir: DATA_DIR, ...off });
      const out = await evalStage().run({ model: chain, config: s }, context(join(tmp.dir, "eval-quiet")));
      const results = out.files.results as string;
      expect(existsSync(results)).toBe(true);
      expect(readdirSync(dirname(results)).filter((f) => f.startsWith("samples_"))).toEqual([]);
    }
  });
});
