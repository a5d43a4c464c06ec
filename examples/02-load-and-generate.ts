/**
 * 02 - Load a Hugging Face model and generate
 *
 * Load a tiny random Llama (an HF folder: config.json + bf16 model.safetensors) from the shared data, check its
 * greedy continuation against the one HF transformers produced, then sample with temperature / top-k / top-p
 * and stream tokens as they come. The tiny model has a 512-token vocabulary and no tokenizer, so we work on ids.
 *
 *   pnpm exec tsx examples/02-load-and-generate.ts
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describeBackend, initBackend } from "@hippocrates/backend";
import { generate, loadModel, parameterCount } from "@hippocrates/model";

const DATA = new URL("../../shared/data/", import.meta.url);
const MODEL_URL = new URL("models/tiny-llama-hf/", DATA);
const MODEL_DIR = fileURLToPath(MODEL_URL);

// 1. Pick the compute backend before any tensor exists (tfjs-node-gpu > tfjs-node > wasm, whichever is installed).
const backend = await initBackend();
console.log(`backend: ${describeBackend(backend)}`);

// 2. Load the checkpoint. bf16 weights are widened exactly to fp32; linear weights are stored [in, out].
const model = await loadModel(MODEL_DIR);
const c = model.config;
console.log(
  `model: ${c.model_type}, ${c.num_hidden_layers} layers, hidden ${c.hidden_size}, ${c.num_attention_heads} heads / ${c.num_key_value_heads} KV heads, vocab ${c.vocab_size}, ${parameterCount(c).toLocaleString("en-US")} parameters`,
);

// 3. Greedy decoding (temperature 0). The reference file holds what transformers' generate(do_sample=False)
//    gave for the same prompts with EOS suppressed, so we pass `eosTokenIds: []` too.
const reference = JSON.parse(await readFile(new URL("expected/generate.json", MODEL_URL), "utf8")) as {
  cases: { name: string; prompt_ids: number[]; generated_ids: number[] }[];
};
const prompts = reference.cases.map((r) => r.prompt_ids);
const greedy = await generate(model, prompts, { maxNewTokens: 12, eosTokenIds: [] });
for (const [i, r] of greedy.entries()) {
  const hf = reference.cases[i]?.generated_ids.slice(0, 12) ?? [];
  const same = r.tokens.every((t, j) => t === hf[j]);
  console.log(
    `greedy ${reference.cases[i]?.name}: [${r.tokens.join(", ")}] ${same ? "== HF transformers" : "!= HF transformers"}`,
  );
}

// 4. Sampling: temperature, top-k and top-p, seeded (each prompt gets its own stream forked from the seed, so
//    the draws do not depend on the batch). `onToken` streams each new token as soon as it is chosen.
process.stdout.write("stream:");
const sampled = await generate(model, [prompts[0] ?? [1]], {
  maxNewTokens: 16,
  temperature: 0.8,
  topK: 50,
  topP: 0.95,
  seed: 7,
  eosTokenIds: [],
  onToken: (_sequence, token) => {
    process.stdout.write(` ${token}`);
  },
});
process.stdout.write("\n");
console.log(`sampled (seed 7): [${sampled[0]?.tokens.join(", ")}] finish=${sampled[0]?.finishReason}`);

// 5. The same seed gives the same sample; another seed another one.
const again = await generate(model, [prompts[0] ?? [1]], {
  maxNewTokens: 16,
  temperature: 0.8,
  topK: 50,
  topP: 0.95,
  seed: 7,
  eosTokenIds: [],
});
console.log(
  `same seed reproduces: ${JSON.stringify(again[0]?.tokens) === JSON.stringify(sampled[0]?.tokens)}`,
);

// 6. Stops: EOS (the config's eos_token_id by default) or extra stop ids end a sequence early.
const stopAt = sampled[0]?.tokens[3];
if (stopAt !== undefined) {
  const stopped = await generate(model, [prompts[0] ?? [1]], {
    maxNewTokens: 16,
    temperature: 0.8,
    topK: 50,
    topP: 0.95,
    seed: 7,
    eosTokenIds: [],
    stopTokenIds: [stopAt],
  });
  console.log(
    `stop on token ${stopAt}: [${stopped[0]?.tokens.join(", ")}] finish=${stopped[0]?.finishReason}`,
  );
}

model.dispose();
