/**
 * A word-level HF tokenizer folder for the stage tests (WordLevel model, `Whitespace` pre-tokenizer, BOS added,
 * a `Human: ... Assistant: ...` chat template): real tokenizer files that @hippocrates/tokenizer loads, with a
 * vocabulary of only the test's words, so the test model's embedding and head stay tiny.
 */
import { join } from "node:path";
import { writeJsonAtomic } from "@hippocrates/core";

const SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"];

export async function writeWordTokenizer(dir: string, texts: string[]): Promise<number> {
  const vocab: Record<string, number> = {};
  for (const w of [...SPECIAL, ...texts.flatMap((t) => t.match(/\w+|[^\w\s]+/gu) ?? [])])
    if (!(w in vocab)) vocab[w] = Object.keys(vocab).length;
  await writeJsonAtomic(join(dir, "tokenizer.json"), {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: SPECIAL.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: "Whitespace" },
    post_processor: null,
    decoder: { type: "WordPiece", prefix: "##", cleanup: true },
    model: { type: "WordLevel", vocab, unk_token: "<unk>" },
  });
  await writeJsonAtomic(join(dir, "tokenizer_config.json"), {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: "<s>",
    eos_token: "</s>",
    unk_token: "<unk>",
    pad_token: "<pad>",
    add_bos_token: true,
    add_eos_token: false,
    chat_template:
      "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ 'Human: ' + m['content'] + '\\n' }}{% elif m['role'] == 'assistant' %}{{ 'Assistant: ' + m['content'] + eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}",
  });
  return Object.keys(vocab).length;
}
