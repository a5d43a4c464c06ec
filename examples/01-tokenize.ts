/**
 * 01 - Tokenize
 *
 * Load the Llama-2 tokenizer (Hugging Face `tokenizer.json`) from the shared data, encode and decode text,
 * see the BOS policy, split a MedQA option the way lm-evaluation-harness does, and render a chat template.
 *
 *   pnpm exec tsx examples/01-tokenize.ts
 */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { loadTokenizer } from "@hippocrates/tokenizer";

// The shared data lives beside the repository (`<parent>/shared/data`), wherever the repository is cloned.
const DATA = new URL("../../shared/data/", import.meta.url);
const path = (rel: string) => fileURLToPath(new URL(rel, DATA));

// 1. Load the tokenizer folder the way transformers' AutoTokenizer does (tokenizer.json + configs).
const tok = await loadTokenizer(path("tokenizers/llama2"));
console.log(`vocab size: ${tok.vocabSize}  bos=${tok.bosTokenId} eos=${tok.eosTokenId}`);

// 2. Encode and decode. Like transformers, `encode` adds the special tokens by default: for Llama-2 that is
//    a BOS (<s>, id 1) in front and no EOS.
const text = "A 23-year-old woman presents with fever and a stiff neck.";
const withBos = await tok.encode(text);
const noBos = await tok.encode(text, { addSpecialTokens: false });
console.log(`encode (with BOS):    [${withBos.join(", ")}]`);
console.log(`encode (no specials): [${noBos.join(", ")}]`);
console.log(`tokens: ${noBos.map((id) => tok.idToToken(id)).join(" ")}`);
console.log(`decode round trip: ${JSON.stringify(await tok.decode(noBos))}`);
console.log(`BOS policy: addBosToken=${tok.addBosToken} addEosToken=${tok.addEosToken}`);

// 3. The evaluation protocol scores an answer option as a continuation of the question. `encodePair` splits
//    the tokens exactly as lm-evaluation-harness's `_encode_pair` (trailing whitespace of the context moves to
//    the continuation; the continuation is what the whole adds to the context). The paper's harness (v0.3)
//    sends no BOS, hence `addSpecialTokens: false`.
const firstLine = (await readFile(path("benchmarks/medqa/medqa_us_4options_test.jsonl"), "utf8")).split(
  "\n",
)[0];
const item = JSON.parse(firstLine ?? "{}") as {
  question: string;
  options: Record<string, string>;
  answer_idx: string;
};
const options = Object.entries(item.options);
const context = `Question: ${item.question}\n${options.map(([k, v]) => `(${k}) ${v}`).join(" ")}\nAnswer:`;
const [letter, option] = options[0] ?? ["A", ""];
const pair = await tok.encodePair(context, ` ${option}`, { addSpecialTokens: false });
console.log(`MedQA question 0: ${item.question.slice(0, 80)}...`);
console.log(`option (${letter}) ${JSON.stringify(option)}:`);
console.log(`  context tokens: ${pair.context.length} (last 3: [${pair.context.slice(-3).join(", ")}])`);
console.log(
  `  continuation tokens: [${pair.continuation.join(", ")}] = ${JSON.stringify(await tok.decode(pair.continuation))}`,
);
// Encoding " option" on its own would start with a lone "▁" piece; the pair split gives the running-text ids.
const alone = await tok.encode(` ${option}`, { addSpecialTokens: false });
console.log(`  encoded alone instead: [${alone.join(", ")}]`);

// 4. Chat templates. The base Llama-2 folder has none, so pass the official Llama-2-chat template (the one
//    transformers ships in meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json).
const LLAMA2_CHAT =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";
const chatTok = await loadTokenizer(path("tokenizers/llama2"), { chatTemplate: LLAMA2_CHAT });
const chat = chatTok.applyChatTemplate(
  [
    { role: "system", content: "You are a careful medical assistant." },
    { role: "user", content: "What is the first-line treatment of uncomplicated hypertension?" },
  ],
  { addGenerationPrompt: true },
);
console.log(`chat template:\n${chat}`);
// The rendered text already starts with "<s>", so encode it without adding another BOS.
const chatIds = await chatTok.encode(chat, { addSpecialTokens: false });
console.log(
  `chat tokens: ${chatIds.length}, first: ${chatIds[0]} (BOS), last 4: [${chatIds.slice(-4).join(", ")}]`,
);
