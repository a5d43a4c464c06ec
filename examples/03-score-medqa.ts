/**
 * 03 - Score a MedQA question by log-likelihood
 *
 * How the benchmarks are scored: each answer option is a continuation of the question, the model gives each
 * continuation a log-likelihood, and the highest one is the prediction (`acc`), or the highest per character
 * of the option (`acc_norm`). Here with a small random Llama that has the real Llama-2 vocabulary, on the
 * first question of the MedQA-USMLE test set, in the prompt format of the paper's harness (v0.3).
 *
 *   pnpm exec tsx examples/03-score-medqa.ts
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { initBackend } from "@hippocrates/backend";
import { createRandomModel, logLikelihood, type ScoreStats } from "@hippocrates/model";
import { loadTokenizer } from "@hippocrates/tokenizer";

const DATA = new URL("../../shared/data/", import.meta.url);
const path = (rel: string) => fileURLToPath(new URL(rel, DATA));

await initBackend();
const tokenizer = await loadTokenizer(path("tokenizers/llama2"));

// 1. A random Llama with Llama-2's 32,000-token vocabulary (HF init: normal(0, 0.02)). Its answers are chance,
//    but every number below is computed exactly as for a trained 7B model.
const model = createRandomModel(
  {
    model_type: "llama",
    vocab_size: tokenizer.vocabSize,
    hidden_size: 64,
    intermediate_size: 172,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: "silu",
    max_position_embeddings: 512,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: tokenizer.bosTokenId,
    eos_token_id: tokenizer.eosTokenId,
  },
  { seed: 0 },
);

// 2. One MedQA question and the v0.3 prompt: "Question: ...\n(A) .. (B) .. (C) .. (D) ..\nAnswer:".
const line =
  (await readFile(path("benchmarks/medqa/medqa_us_4options_test.jsonl"), "utf8")).split("\n")[0] ?? "{}";
const item = JSON.parse(line) as { question: string; options: Record<string, string>; answer_idx: string };
const letters = Object.keys(item.options);
const optionTexts = Object.values(item.options);
const context = `Question: ${item.question}\n${letters.map((k, i) => `(${k}) ${optionTexts[i]}`).join(" ")}\nAnswer:`;
console.log(context);
console.log(`gold: (${item.answer_idx}) ${item.options[item.answer_idx]}`);

// 3. Tokenize each (context, " option") pair as lm-evaluation-harness does; no BOS in the v0.3 protocol.
const requests = await Promise.all(
  optionTexts.map((o) => tokenizer.encodePair(context, ` ${o}`, { addSpecialTokens: false })),
);

// 4. Score. With `shareContext` (the default) the four options share one pass over the common context
//    (its KV cache is expanded to four rows); `naive` runs each (context + option) on its own. Same numbers,
//    fewer tokens through the model.
const shared: ScoreStats = { forwards: 0, tokens: 0, prefixes: 0 };
const naive: ScoreStats = { forwards: 0, tokens: 0, prefixes: 0 };
const results = await logLikelihood(model, requests, { stats: shared });
const check = await logLikelihood(model, requests, { naive: true, stats: naive });
const maxDiff = Math.max(...results.map((r, i) => Math.abs(r.logprob - (check[i]?.logprob ?? Number.NaN))));
console.log(
  `shared context: ${shared.tokens} tokens in ${shared.forwards} forwards; naive: ${naive.tokens} tokens in ${naive.forwards} forwards; max |difference| ${maxDiff.toExponential(1)}`,
);

// 5. Per-option log-likelihood, and the two metrics' choices.
const norm = results.map((r, i) => r.logprob / [...(optionTexts[i] ?? "")].length); // per character, as `acc_norm`
for (const [i, r] of results.entries()) {
  const tokens = requests[i]?.continuation.length ?? 0;
  console.log(
    `(${letters[i]}) logprob ${r.logprob.toFixed(3).padStart(9)}  tokens ${String(tokens).padStart(2)}  per char ${norm[i]?.toFixed(4)}  greedy ${r.isGreedy}  ${optionTexts[i]}`,
  );
}
const argmax = (xs: number[]) => xs.reduce((best, x, i) => (x > (xs[best] ?? -Infinity) ? i : best), 0);
const acc = argmax(results.map((r) => r.logprob));
const accNorm = argmax(norm);
console.log(`acc picks (${letters[acc]})${letters[acc] === item.answer_idx ? " correct" : " wrong"}`);
console.log(
  `acc_norm picks (${letters[accNorm]})${letters[accNorm] === item.answer_idx ? " correct" : " wrong"}`,
);
console.log(
  "(a random model: about 1 in 4 right; summed log-likelihood favours short options, acc_norm corrects for length)",
);

model.dispose();
