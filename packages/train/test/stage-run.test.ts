/**
 * The training stages end to end, as the pipeline runs them: settings through the Standard Schema, `check`,
 * then `run` on TRL's example records (huggingface/trl docs/source/dataset_formats.md at commit 0087e4f5)
 * with a word-level tokenizer folder and a small random Llama: SFT over the base, then DPO over base + SFT.
 *
 * Then the adapter's PEFT load: `PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(
 * config.base_model_name_or_path), adapter)` (peft/auto.py hands the string to transformers unchanged; run from
 * the adapter folder, a relative path resolves there). Loaded that way, the DPO adapter must reproduce the
 * trained policy: before, its config named the raw base and PEFT silently dropped the SFT adapter.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ModelArtifact,
  type PipelineStage,
  type PipelineStageOutput,
  type StageContext,
  silentProgress,
} from "@hippocrates/core";
import { dpoPairs } from "@hippocrates/data";
import {
  adapterArtifact,
  type CausalLM,
  createRandomModel,
  LINEAR_MODULES,
  loadAdapter,
  loadArtifact,
  loadModel,
  saveModel,
} from "@hippocrates/model";
import { loadTokenizer } from "@hippocrates/tokenizer";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dpoStage, sftStage } from "../src/stage.js";
import { dpoLogProbs } from "../src/tasks.js";
import { SMALL_LLAMA, setupBackend } from "./llama-helpers.js";
import { writeWordTokenizer } from "./word-tokenizer.js";

const SKY = "What color is the sky?";
const SUN = "Where is the sun?";
// TRL's examples: conversational prompt-completion and language modelling (SFT); conversational preference
// with an explicit and an implicit prompt (DPO).
const SFT_RECORDS = [
  {
    prompt: [{ role: "user", content: SKY }],
    completion: [{ role: "assistant", content: "It is blue." }],
  },
  {
    messages: [
      { role: "user", content: SUN },
      { role: "assistant", content: "In the sky." },
    ],
  },
];
const DPO_RECORDS = [
  {
    prompt: [{ role: "user", content: SKY }],
    chosen: [{ role: "assistant", content: "It is blue." }],
    rejected: [{ role: "assistant", content: "It is green." }],
  },
  {
    chosen: [
      { role: "user", content: SUN },
      { role: "assistant", content: "In the sky." },
    ],
    rejected: [
      { role: "user", content: SUN },
      { role: "assistant", content: "In the sea." },
    ],
  },
];

let root: string;
let base: ModelArtifact;
let tokDir: string;

const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;

function context(outputDir: string): StageContext {
  return {
    outputDir,
    runDir: root,
    baseDir: root,
    tokenizer: tokDir,
    seed: 7,
    progress: silentProgress,
    signal: new AbortController().signal,
    log: () => {},
  };
}

/** What the pipeline does with a stage: validate the entry, check, run. */
async function runStage<S>(
  stage: PipelineStage<S>,
  entry: Record<string, unknown>,
  model: ModelArtifact,
  outputDir: string,
): Promise<PipelineStageOutput> {
  const r = await stage.settings["~standard"].validate(entry);
  if (r.issues) throw new Error(JSON.stringify(r.issues));
  const ctx = context(outputDir);
  await stage.check?.(r.value, ctx);
  return stage.run({ model, config: r.value }, ctx);
}

const readConfig = async (dir: string) =>
  JSON.parse(await readFile(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;

let sft: PipelineStageOutput;
let dpo: PipelineStageOutput;

beforeAll(async () => {
  await setupBackend();
  root = await mkdtemp(join(tmpdir(), "hippo-stage-run-"));
  tokDir = join(root, "tokenizer");
  const texts = [SKY, SUN, "It is blue. It is green. In the sky. In the sea.", "Human: Assistant:"];
  const vocab = await writeWordTokenizer(tokDir, texts);
  await writeFile(join(root, "sft.jsonl"), jsonl(SFT_RECORDS));
  await writeFile(join(root, "dpo.jsonl"), jsonl(DPO_RECORDS));
  const m = createRandomModel({ ...SMALL_LLAMA, vocab_size: vocab }, { seed: 3 });
  await saveModel(m, join(root, "base"));
  m.dispose();
  // An absolute path, as the pipeline gives it: the adapter must still name its base relatively.
  base = { kind: "hf-model", path: join(root, "base") };
  // Both stages: 2 records, 2 per step, 4 epochs -> 4 steps, checkpoints at 2 and 4.
  const schedule = {
    learning_rate: 5e-2,
    lr_scheduler_type: "constant",
    per_device_train_batch_size: 2,
    gradient_accumulation_steps: 1,
    num_train_epochs: 4,
    save_steps: 2,
  };
  sft = await runStage(
    // Only r changes: the SFT preset's alpha 32 and all-linear targets stay.
    sftStage({ lora: { r: 4 } }),
    { data: "sft.jsonl", ...schedule },
    base,
    join(root, "sft"),
  );
  dpo = await runStage(
    dpoStage(),
    { data: "dpo.jsonl", eval_data: "dpo.jsonl", ...schedule, lora: { r: 4 } },
    sft.model,
    join(root, "dpo"),
  );
}, 300_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("training stages on TRL-format data", () => {
  it("SFT trains a PEFT adapter with the preset's alpha and all-linear targets, its base named relatively", async () => {
    expect(sft.model).toEqual({ kind: "peft-adapter", path: join(root, "sft"), base });
    expect(sft.metrics.global_step).toBe(4);
    const cfg = await readConfig(join(root, "sft"));
    expect(cfg).toMatchObject({ r: 4, lora_alpha: 32, base_model_name_or_path: "../base" });
    // All seven linear modules of a decoder layer, in HF's order (q, k, v, o, gate, up, down).
    expect(cfg.target_modules).toEqual([...LINEAR_MODULES]);
    // A checkpoint's adapter names the base relative to its own folder.
    expect((await readConfig(join(root, "sft", "checkpoint-2"))).base_model_name_or_path).toBe("../../base");
  });

  it("DPO over base + SFT writes the merged input model and points its adapter at ./input_model", async () => {
    expect(dpo.model).toEqual({ kind: "peft-adapter", path: join(root, "dpo"), base: sft.model });
    expect(dpo.files.input_model).toBe(join(root, "dpo", "input_model"));
    const cfg = await readConfig(join(root, "dpo"));
    expect(cfg.base_model_name_or_path).toBe("./input_model");
    expect((await readConfig(join(root, "dpo", "checkpoint-2"))).base_model_name_or_path).toBe(
      "../input_model",
    );
    const inputConfig = JSON.parse(await readFile(join(root, "dpo", "input_model", "config.json"), "utf8"));
    expect(inputConfig.torch_dtype).toBe("float32");
    // The run's tokenizer travels with it, so the folder is a whole HF model.
    await expect(readFile(join(root, "dpo", "input_model", "tokenizer.json"), "utf8")).resolves.toContain(
      "WordLevel",
    );
    expect(dpo.metrics["eval_rewards/accuracies"]).toBeGreaterThanOrEqual(0);
  });

  it("the DPO adapter loaded the PEFT way (its config's base, then the adapter) is the trained policy", async () => {
    const dir = join(root, "dpo");
    const cfg = await readConfig(dir);
    // PEFT run from the adapter folder: AutoModelForCausalLM.from_pretrained(base_model_name_or_path), then
    // the adapter on top, active (not merged), nothing else.
    const peft = await loadModel(join(dir, cfg.base_model_name_or_path as string));
    await loadAdapter(peft, dir);
    const tok = await loadTokenizer(tokDir);
    const pairs = await dpoPairs(join(root, "dpo.jsonl"), tok);
    const padId = tok.padTokenId as number;
    const meanLogps = (m: CausalLM) => {
      const { chosen, rejected } = tf.tidy(() => dpoLogProbs(m, pairs, { padId, training: false }));
      const c = Array.from(chosen.dataSync());
      const r = Array.from(rejected.dataSync());
      chosen.dispose();
      rejected.dispose();
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      return { chosen: mean(c), rejected: mean(r) };
    };
    // The in-memory policy at the end of training evaluated these pairs (eval_data = data): TRL's
    // eval_logps/chosen and eval_logps/rejected. Tolerance 1e-4: float32 sums of a few token log-probs
    // (magnitude ~14; measured difference 5e-7) from weights that went through a float32 save and load.
    const peftLogps = meanLogps(peft);
    expect(Math.abs(peftLogps.chosen - (dpo.metrics["eval_logps/chosen"] as number))).toBeLessThan(1e-4);
    expect(Math.abs(peftLogps.rejected - (dpo.metrics["eval_logps/rejected"] as number))).toBeLessThan(1e-4);

    // Logits equal our own chain loader's (base, SFT and DPO adapters merged in order), to float32 rounding
    // of the merge (W + s A B vs x W + s (x A) B): 1e-4 absolute on logits (measured 5e-6).
    const merged = await loadArtifact(dpo.model);
    const ids = [pairs[0]?.promptIds.concat(pairs[0].chosenIds) ?? []];
    const diff = tf.tidy(() => {
      const a = peft.forward(ids).logits as tf.Tensor3D;
      const b = merged.forward(ids).logits as tf.Tensor3D;
      return tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] as number;
    });
    expect(diff).toBeLessThan(1e-4);
    // So does adapterArtifact, our reading of the adapter folder (relative base resolved there).
    expect(await adapterArtifact(dir)).toEqual({
      kind: "peft-adapter",
      path: dir,
      base: { kind: "hf-model", path: join(dir, "./input_model") },
    });
    merged.dispose();

    // What PEFT loaded before: the raw base and the DPO adapter, SFT silently missing. Clearly another model.
    const raw = await loadModel(base.path);
    await loadAdapter(raw, dir);
    const rawLogps = meanLogps(raw);
    expect(Math.abs(rawLogps.chosen - peftLogps.chosen)).toBeGreaterThan(0.1);
    raw.dispose();
    peft.dispose();
  });
});
