/**
 * 05 - Preference learning with DPO
 *
 * The last training stage of Hippo: Direct Preference Optimization on (prompt, chosen, rejected) triples. The
 * input model is the SFT result of example 04 (base + its adapter, merged), which is also DPO's frozen
 * reference; a new LoRA adapter on top is the policy. The metrics are TRL's (rewards/chosen, rewards/rejected,
 * rewards/accuracies, rewards/margins, logps/...), so a run can be compared with a TRL run line by line.
 *
 *   pnpm exec tsx examples/04-lora-sft.ts && pnpm exec tsx examples/05-dpo.ts
 */
import { existsSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend } from "@hippocrates/backend";
import type { ModelArtifact, PreferenceRecord, TokenizedPreference } from "@hippocrates/core";
import { DEFAULT_TEMPLATE } from "@hippocrates/data";
import { loadTokenizer } from "@hippocrates/tokenizer";
import { DPO_PRESET, trainDpo } from "@hippocrates/train";

const DATA = new URL("../../shared/data/", import.meta.url);
const work = join(tmpdir(), "hippocrates-examples");
if (!existsSync(join(work, "sft", "adapter_config.json"))) {
  console.error(`no SFT adapter in ${work}/sft: run examples/04-lora-sft.ts first`);
  process.exit(1);
}

await initBackend();
const tokenizer = await loadTokenizer(fileURLToPath(new URL("tokenizers/llama2", DATA)));

// 1. Preference pairs in TRL's format (what the data package's preference builder writes, there judged by
//    GPT-4 on iCliniq answers): the chosen answer is the careful one.
const pairs: PreferenceRecord[] = [
  {
    id: "p0",
    source: "examples",
    prompt: "I have had a headache for two days. What should I do?",
    chosen:
      "Rest, drink water and take paracetamol; see a doctor if it is severe or comes with fever or a stiff neck.",
    rejected: "It is nothing, ignore it.",
  },
  {
    id: "p1",
    source: "examples",
    prompt: "Can I stop my antibiotics when I feel better?",
    chosen: "Finish the course your doctor prescribed unless they tell you otherwise.",
    rejected: "Yes, stop as soon as you feel better.",
  },
  {
    id: "p2",
    source: "examples",
    prompt: "My child swallowed a button battery. What now?",
    chosen:
      "Go to the emergency department now: a swallowed button battery can burn the oesophagus within hours.",
    rejected: "Wait a few days to see if it passes.",
  },
  {
    id: "p3",
    source: "examples",
    prompt: "Is chest pain when climbing stairs normal at 60?",
    chosen: "No: chest pain on exertion can be angina. Please see a doctor soon for an ECG.",
    rejected: "Yes, that is normal at your age.",
  },
];

// 2. Tokenize as the pipeline's DPO stage does: BOS + the SFT prompt template around the prompt; each response
//    followed by EOS. (The loss compares the responses' summed log-probabilities given the prompt.)
const eos = tokenizer.eosTokenId ?? 2;
const train: TokenizedPreference[] = [];
for (const p of pairs) {
  const prompt = DEFAULT_TEMPLATE.user.replace("{content}", p.prompt);
  train.push({
    promptIds: [tokenizer.bosTokenId ?? 1, ...(await tokenizer.encode(prompt, { addSpecialTokens: false }))],
    chosenIds: [...(await tokenizer.encode(p.chosen, { addSpecialTokens: false })), eos],
    rejectedIds: [...(await tokenizer.encode(p.rejected, { addSpecialTokens: false })), eos],
  });
}
console.log(`${train.length} pairs; prompt 0 is ${train[0]?.promptIds.length} tokens`);

// 3. The model chain: the SFT adapter over the base model (an artifact, exactly what trainCausalLm returned).
const sft: ModelArtifact = {
  kind: "peft-adapter",
  path: join(work, "sft"),
  base: { kind: "hf-model", path: join(work, "base") },
};

// 4. Train. DPO_PRESET is the paper's setting (sigmoid loss, beta 0.1, lr 1e-5, 1 epoch, new LoRA r8/alpha16 on
//    q/v); here a higher learning rate and a few epochs over four pairs, so the margins move in seconds.
const outputDir = join(work, "dpo");
await rm(outputDir, { recursive: true, force: true });
const result = await trainDpo({
  ...DPO_PRESET,
  model: sft,
  train,
  outputDir,
  learning_rate: 5e-3,
  lr_scheduler_type: "constant",
  per_device_train_batch_size: 4,
  gradient_accumulation_steps: 1,
  num_train_epochs: 8,
  save_steps: 0,
  logging_steps: 1,
});

// 5. TRL's metrics, logged every step. At step 1 the policy equals the reference (the new adapter's B is zero):
//    loss ln 2 = 0.6931, rewards 0. Training pushes rewards/chosen above rewards/rejected.
const keys = [
  "loss",
  "rewards/chosen",
  "rewards/rejected",
  "rewards/accuracies",
  "rewards/margins",
  "logps/chosen",
  "logps/rejected",
];
console.log(`step | ${keys.join(" | ")}`);
for (const e of result.loop.logHistory) {
  if (e.loss === undefined) continue;
  console.log(
    `${String(e.step ?? "?").padStart(4)} | ${keys.map((k) => (e[k] ?? Number.NaN).toFixed(4)).join(" | ")}`,
  );
}
console.log(`final loss ${result.metrics.final_loss?.toFixed(4)} after ${result.metrics.global_step} steps`);

// 6. The output: a new PEFT adapter whose base chain is base -> SFT adapter. The merge stage folds both in.
console.log(`output artifact: ${JSON.stringify(result.model)}`);
console.log(`files: ${(await readdir(outputDir)).sort().join(", ")}`);
