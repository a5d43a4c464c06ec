import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  IGNORE_INDEX,
  type ModelArtifact,
  type TokenizedExample,
  type TokenizedPreference,
} from "@hippocrates/core";
import { createPacker } from "@hippocrates/data";
import {
  addLoraAdapter,
  createRandomModel,
  loadArtifact,
  loadModel,
  saveAdapter,
  saveModel,
} from "@hippocrates/model";
import { loadTokenizer } from "@hippocrates/tokenizer";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CPT_PRESET, DPO_PRESET, SFT_PRESET } from "../src/presets.js";
import { trainCausalLm, trainDpo } from "../src/stages.js";
import { dpoLogProbs, lmTask, responseExample } from "../src/tasks.js";
import {
  createVocabMap,
  LLAMA2_TOKENIZER,
  readPubmedQa,
  SMALL_LLAMA,
  setupBackend,
} from "./llama-helpers.js";

let root: string;
let base: ModelArtifact;
const EOS = 2;
const BOS = 1;

/**
 * PubMedQA, tokenized by the Llama-2 tokenizer (ids renumbered densely, see createVocabMap); the CPT documents
 * without their EOS (the packer appends it).
 */
let cptDocs: number[][];
let sft: { prompt: number[]; answer: number[]; other: number[] }[];

const template = (q: string) => `Human: ${q}\nAssistant: `;

beforeAll(async () => {
  await setupBackend();
  root = await mkdtemp(join(tmpdir(), "hippo-stages-"));
  const tokenizer = await loadTokenizer(LLAMA2_TOKENIZER);
  const vocab = createVocabMap();
  const enc = async (text: string, special = false) =>
    vocab.map(await tokenizer.encode(text, { addSpecialTokens: special }));
  const items = await readPubmedQa(12);
  // One text at a time: the dense ids are handed out in the order texts are mapped, and concurrent encodes
  // (Promise.all) finish in an order that depends on the machine's load, which gave the random model's rows to
  // other tokens in each run (the SFT overfit test then failed about one run in four under load).
  cptDocs = [];
  for (const it of items.slice(0, 6)) cptDocs.push([BOS, ...(await enc(it.contexts.join("\n")))]);
  sft = [];
  for (const it of items.slice(0, 8)) {
    const prompt = await enc(template(it.question), true);
    const answer = await enc(it.decision);
    const other = await enc(it.decision === "yes" ? "no" : "yes");
    sft.push({ prompt, answer, other });
  }
  const m = createRandomModel({ ...SMALL_LLAMA, vocab_size: vocab.size() }, { seed: 1 });
  await saveModel(m, join(root, "base"));
  m.dispose();
  base = { kind: "hf-model", path: join(root, "base") };
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/**
 * Pack documents (BOS text, EOS appended by the packer) into blocks of `size` with segment ids, the tail that
 * does not fill a block dropped (group_texts); labels = inputs (EOS kept).
 */
function pack(docs: number[][], size: number): TokenizedExample[] {
  const packer = createPacker({ blockSize: size, eosTokenId: EOS, remainder: "drop" });
  return [...docs.flatMap((doc) => packer.add(doc)), ...packer.finish()];
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe("stages on a random Llama with the Llama-2 vocabulary, real PubMedQA text", () => {
  it("CPT: the loss falls on packed PubMedQA contexts (LoRA r8 on the MLP)", async () => {
    const blocks = pack(cptDocs, 128);
    expect(blocks.length).toBeGreaterThanOrEqual(8);
    const out = await trainCausalLm({
      ...CPT_PRESET,
      name: "cpt",
      model: base,
      train: blocks.slice(0, 8),
      eval: blocks.slice(0, 2),
      outputDir: join(root, "cpt"),
      learning_rate: 3e-2,
      per_device_train_batch_size: 4,
      gradient_accumulation_steps: 1,
      num_train_epochs: 5,
      save_steps: 4,
    });
    const losses = out.loop.logHistory.filter((e) => e.loss !== undefined).map((e) => e.loss as number);
    expect(losses).toHaveLength(10);
    // Each epoch is 2 steps over the same 8 full blocks (same token count per step), so an epoch's mean loss
    // is the loss over the whole set: the last epoch is clearly below the first.
    expect(mean(losses.slice(-2))).toBeLessThan(mean(losses.slice(0, 2)) - 0.2);
    expect(out.model).toEqual({ kind: "peft-adapter", path: join(root, "cpt"), base });
    const cfg = JSON.parse(await readFile(join(root, "cpt", "adapter_config.json"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(cfg.r).toBe(8);
    expect(cfg.lora_alpha).toBe(16);
    expect(cfg.target_modules).toEqual(["gate_proj", "up_proj", "down_proj"]);
    const state = JSON.parse(await readFile(join(root, "cpt", "trainer_state.json"), "utf8")) as {
      global_step: number;
      log_history: Record<string, number>[];
    };
    expect(state.global_step).toBe(10);
    expect(state.log_history.some((e) => e.eval_loss !== undefined)).toBe(true);
  });

  it("SFT: response-only loss overfits a small instruction set (full fine-tuning), output loads back", async () => {
    const examples = sft.map((s) => responseExample(s.prompt, [...s.answer, EOS]));
    // Prompt tokens masked, response tokens (answer + EOS) kept, token by token.
    const ex0 = examples[0] as TokenizedExample;
    const s0 = sft[0] as (typeof sft)[number];
    expect(ex0.labels.slice(0, s0.prompt.length).every((l) => l === IGNORE_INDEX)).toBe(true);
    expect(ex0.labels.slice(s0.prompt.length)).toEqual([...s0.answer, EOS]);

    const out = await trainCausalLm({
      ...SFT_PRESET,
      name: "sft",
      lora: false,
      model: base,
      train: examples,
      outputDir: join(root, "sft"),
      // 3e-3, not 1e-2: at 1e-2 Adam's loss spiked late in some vocabulary orders (0.74 after 40 epochs in one);
      // at 3e-3 x 50 epochs it falls smoothly to 0.006-0.008 for model seeds 1-4 (measured), well under 0.05.
      learning_rate: 3e-3,
      lr_scheduler_type: "constant",
      per_device_train_batch_size: 8,
      gradient_accumulation_steps: 1,
      num_train_epochs: 50,
      save_steps: 0,
    });
    expect(out.metrics.final_loss).toBeLessThan(0.05);
    expect(out.model).toEqual({ kind: "hf-model", path: join(root, "sft") });
    // The saved HF folder reproduces the low loss.
    const m = await loadModel(join(root, "sft"));
    const task = lmTask(m, { padId: 0 });
    const loss = tf.tidy(
      () =>
        tf
          .div(task.lossSum(examples, { training: false }).loss, task.units(examples))
          .dataSync()[0] as number,
    );
    expect(loss).toBeLessThan(0.05);
    m.dispose();
  });

  it("DPO: a new adapter over the merged SFT model raises reward accuracy above 0.5; the reference is the SFT model", async () => {
    // An SFT adapter over the base (random B so that it changes the model), saved as a PEFT folder.
    const m = await loadModel(base.path);
    const sftAdapter = addLoraAdapter(
      m,
      { r: 4, alpha: 8, targetModules: ["q_proj", "v_proj", "up_proj"] },
      { seed: 5, baseModelNameOrPath: base.path },
    );
    for (const b of sftAdapter.b.values())
      tf.tidy(() => b.assign(tf.randomNormal(b.shape, 0, 0.5, "float32", 9)));
    await saveAdapter(m, join(root, "sft-adapter"));
    m.dispose();
    const sftModel: ModelArtifact = { kind: "peft-adapter", path: join(root, "sft-adapter"), base };

    const pairs: TokenizedPreference[] = sft.map((s) => ({
      promptIds: s.prompt,
      chosenIds: [...s.answer, EOS],
      rejectedIds: [...s.other, EOS],
    }));
    const out = await trainDpo({
      ...DPO_PRESET,
      model: sftModel,
      train: pairs,
      eval: pairs,
      outputDir: join(root, "dpo"),
      learning_rate: 2e-2,
      per_device_train_batch_size: 4,
      gradient_accumulation_steps: 1,
      num_train_epochs: 6,
      eval_steps: 100,
    });
    const evals = out.loop.logHistory.filter((e) => e["eval_rewards/accuracies"] !== undefined);
    expect(evals.at(-1)?.["eval_rewards/accuracies"]).toBeGreaterThan(0.5);
    expect(out.loop.logHistory[0]).toHaveProperty("rewards/margins");
    expect(out.model).toEqual({ kind: "peft-adapter", path: join(root, "dpo"), base: sftModel });

    // The cached reference log-probs are the SFT model's (base + SFT adapter merged), not the bare base's.
    const cache = JSON.parse(await readFile(join(root, "dpo", "reference_logps.json"), "utf8")) as {
      chosen: number[];
    };
    const logps = async (artifact: ModelArtifact) => {
      const model = await loadArtifact(artifact);
      const t = tf.tidy(() => dpoLogProbs(model, pairs, { padId: 2, training: false }).chosen);
      const v = Array.from(await t.data());
      t.dispose();
      model.dispose();
      return v;
    };
    const sftLogps = await logps(sftModel);
    const baseLogps = await logps(base);
    cache.chosen.forEach((c, i) => {
      expect(Math.abs(c - (sftLogps[i] as number))).toBeLessThan(1e-3);
    });
    expect(Math.max(...cache.chosen.map((c, i) => Math.abs(c - (baseLogps[i] as number))))).toBeGreaterThan(
      1e-2,
    );
  });
});
