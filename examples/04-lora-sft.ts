/**
 * 04 - LoRA instruction tuning (SFT)
 *
 * The SFT stage of the pipeline in small: a handful of medical instructions, tokenized with the default
 * prompt template (prompt tokens masked out of the loss), a LoRA adapter trained with the train package's SFT
 * preset (the paper's settings) scaled down to a few steps, saved in PEFT's format, and loaded back onto the
 * base model. The base is a small random Llama with the Llama-2 vocabulary, so it knows nothing: the adapter
 * visibly raises the likelihood of the answers it was trained on.
 *
 *   pnpm exec tsx examples/04-lora-sft.ts
 */
import { mkdir, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend } from "@hippocrates/backend";
import type { InstructionRecord, LogLikelihoodRequest, TokenizedExample } from "@hippocrates/core";
import { DEFAULT_TEMPLATE, tokenizeInstruction } from "@hippocrates/data";
import { createRandomModel, loadAdapter, loadModel, logLikelihood, saveModel } from "@hippocrates/model";
import { loadTokenizer } from "@hippocrates/tokenizer";
import { SFT_PRESET, trainCausalLm } from "@hippocrates/train";

const DATA = new URL("../../shared/data/", import.meta.url);
// Examples 04-06 share a work folder: 05 trains DPO on this example's adapter, 06 evaluates the result.
const work = join(tmpdir(), "hippocrates-examples");
await rm(join(work, "sft"), { recursive: true, force: true });
await mkdir(work, { recursive: true });

await initBackend();
const tokenizer = await loadTokenizer(fileURLToPath(new URL("tokenizers/llama2", DATA)));

// 1. A base model to tune: a random Llama with Llama-2's vocabulary, saved as an HF folder (the stages take
//    model folders, as the pipeline passes them from stage to stage).
const baseDir = join(work, "base");
const base = createRandomModel(
  {
    model_type: "llama",
    vocab_size: tokenizer.vocabSize,
    hidden_size: 64,
    intermediate_size: 172,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: "silu",
    max_position_embeddings: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  },
  { seed: 0 },
);
await saveModel(base, baseDir);
base.dispose();

// 2. Instructions in the InstructionRecord format the data package writes (chat messages; loss on assistant turns).
const qa: [string, string][] = [
  ["What is the first-line drug for type 2 diabetes?", "Metformin, unless contraindicated."],
  ["Which vitamin deficiency causes scurvy?", "Vitamin C (ascorbic acid) deficiency."],
  ["What is the antidote for acetaminophen overdose?", "N-acetylcysteine."],
  ["Which organism causes tuberculosis?", "Mycobacterium tuberculosis."],
  ["What does an elevated troponin suggest?", "Injury to heart muscle, such as a myocardial infarction."],
  ["Name a common symptom of hypothyroidism.", "Fatigue, with cold intolerance and weight gain."],
];
const records: InstructionRecord[] = qa.map(([q, a], i) => ({
  id: `example-${i}`,
  source: "examples",
  messages: [
    { role: "user", content: q },
    { role: "assistant", content: a },
  ],
}));

// 3. Tokenize: "Human: {prompt}\nAssistant: " + answer + EOS, BOS in front; prompt labels are -100.
const train: TokenizedExample[] = [];
for (const r of records) {
  const ex = await tokenizeInstruction(r, tokenizer, { template: DEFAULT_TEMPLATE, maxLength: 64 });
  if (ex) train.push(ex);
}
const first = train[0] as TokenizedExample;
console.log(
  `${train.length} examples; the first has ${first.inputIds.length} tokens, ${first.labels.filter((l) => l >= 0).length} of them trained on`,
);
console.log(`  text: ${JSON.stringify(await tokenizer.decode(first.inputIds))}`);

// Score the answers (sum of log-probs of the answer given its prompt) to see what training changes.
const requests: LogLikelihoodRequest[] = train.map((ex) => {
  const start = ex.labels.findIndex((l) => l >= 0);
  return { context: ex.inputIds.slice(0, start), continuation: ex.inputIds.slice(start) };
});
const meanLogprob = async (dir: string, adapter?: string) => {
  const m = await loadModel(dir);
  if (adapter) await loadAdapter(m, adapter);
  const rs = await logLikelihood(m, requests);
  m.dispose();
  return rs.reduce((s, r) => s + r.logprob, 0) / rs.length;
};
const before = await meanLogprob(baseDir);

// 4. Train. The preset holds the paper's SFT settings (LoRA r32/alpha32 on all linear layers, lr 1e-4, cosine,
//    3 epochs, batch 8 x 2; HF's names); here a smaller adapter, a higher learning rate and a few steps so it runs in seconds.
const outputDir = join(work, "sft");
const result = await trainCausalLm({
  ...SFT_PRESET,
  name: "sft",
  model: { kind: "hf-model", path: baseDir },
  train,
  outputDir,
  lora: { ...SFT_PRESET.lora, r: 8, lora_alpha: 16 },
  learning_rate: 1e-2,
  lr_scheduler_type: "constant",
  per_device_train_batch_size: 6,
  gradient_accumulation_steps: 1,
  num_train_epochs: 20, // 6 examples = one step per epoch
  save_steps: 0,
  logging_steps: 4,
});
for (const entry of result.loop.logHistory) {
  if (entry.loss !== undefined) console.log(`  step ${entry.step ?? "?"}: loss ${entry.loss.toFixed(4)}`);
}
console.log(
  `trained ${result.metrics.global_step} steps: train_loss ${result.metrics.train_loss?.toFixed(4)}, final loss ${result.metrics.final_loss?.toFixed(4)}`,
);

// 5. The output is a PEFT adapter folder (load it in Python with PeftModel.from_pretrained) and the artifact
//    the next stage (DPO, merge, eval) takes as its model.
console.log(`output artifact: ${JSON.stringify(result.model)}`);
console.log(`files: ${(await readdir(outputDir)).sort().join(", ")}`);
const adapterConfig = JSON.parse(await readFile(join(outputDir, "adapter_config.json"), "utf8")) as Record<
  string,
  unknown
>;
console.log(
  `adapter_config: peft_type=${adapterConfig.peft_type} r=${adapterConfig.r} lora_alpha=${adapterConfig.lora_alpha} target_modules=${JSON.stringify(adapterConfig.target_modules)}`,
);

// 6. Load the adapter back onto a fresh copy of the base model and score the answers again.
const after = await meanLogprob(baseDir, outputDir);
console.log(`mean answer log-likelihood: base ${before.toFixed(2)} -> base + adapter ${after.toFixed(2)}`);
console.log(`kept for examples 05 and 06: ${join(work, "base")} and ${outputDir}`);
