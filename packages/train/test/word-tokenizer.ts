/**
 * A word-level HF tokenizer folder for the stage tests (@hippocrates/tokenizer's WordLevel folder, BOS added,
 * a `Human: ... Assistant: ...` chat template): real tokenizer files that @hippocrates/tokenizer loads, with a
 * vocabulary of only the test's words (in order of first appearance), so the test model's embedding and head
 * stay tiny.
 */
import { WORD_LEVEL_SPECIAL_TOKENS, whitespaceWords, writeWordLevelTokenizer } from "@hippocrates/tokenizer";

const CHAT_TEMPLATE =
  "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ 'Human: ' + m['content'] + '\\n' }}{% elif m['role'] == 'assistant' %}{{ 'Assistant: ' + m['content'] + eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}";

export async function writeWordTokenizer(dir: string, texts: string[]): Promise<number> {
  const vocab: Record<string, number> = Object.create(null);
  for (const w of [...WORD_LEVEL_SPECIAL_TOKENS, ...texts.flatMap(whitespaceWords)])
    if (!(w in vocab)) vocab[w] = Object.keys(vocab).length;
  await writeWordLevelTokenizer(dir, vocab, { addBosToken: true, chatTemplate: CHAT_TEMPLATE });
  return Object.keys(vocab).length;
}
