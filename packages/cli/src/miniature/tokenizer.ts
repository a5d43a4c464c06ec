/**
 * The miniature's own tokenizer, so the main command needs nothing outside the repo: a word-level HF
 * `tokenizer.json` (WordLevel model, `Whitespace` pre-tokenizer, WordPiece decoder for tidy spacing) whose
 * vocabulary is every word of the knowledge base, plus `tokenizer_config.json` with the special tokens and a
 * chat template. Invented names become single tokens, which keeps the model small and its vocabulary ~500.
 */
import { describeEntries, HippoError, writeDirAtomic } from "@hippocrates/core";
import { WORD_LEVEL_SPECIAL_TOKENS, whitespaceWords, writeWordLevelTokenizer } from "@hippocrates/tokenizer";

/** Vocabulary: special tokens, then words by descending count (ties alphabetical), so ids are deterministic. */
export function buildVocab(texts: string[]): Record<string, number> {
  const counts = new Map<string, number>();
  for (const t of texts) for (const w of whitespaceWords(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
  // Common words a user may type at the server or in `hippo generate`.
  for (const w of [
    "Human",
    "Assistant",
    "Question",
    "Answer",
    "user",
    "assistant",
    "system",
    ":",
    "?",
    ".",
    ",",
    "(",
    ")",
  ]) {
    if (!counts.has(w)) counts.set(w, 0);
  }
  const words = [...counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([w]) => w);
  const vocab: Record<string, number> = Object.create(null);
  [...WORD_LEVEL_SPECIAL_TOKENS, ...words].forEach((w, i) => {
    vocab[w] = i;
  });
  return vocab;
}

/** A simple chat template (Jinja, as transformers stores it): `Human: ...\nAssistant: ...`, the SFT format. */
export const MINIATURE_CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'user' %}{{ message['content'] }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + eos_token }}{% else %}{{ message['content'] + '\n' }}{% endif %}{% endfor %}";

/** Write the tokenizer folder atomically; returns its vocabulary size. */
export async function writeTokenizerFolder(dir: string, texts: string[], maxLength = 256): Promise<number> {
  const vocab = buildVocab(texts);
  const files = ["tokenizer.json", "tokenizer_config.json"];
  // A rerun replaces the folder it wrote before; a folder holding anything else is refused (writeDirAtomic).
  const mayReplace = (d: string, entries: string[]) => {
    const other = entries.filter((e) => !files.includes(e));
    if (other.length > 0)
      throw new HippoError(
        "INVALID_ARGUMENT",
        `refusing to replace this folder: it holds ${describeEntries(other)}`,
        {
          file: d,
          expected: `only ${files.join(" and ")} (an earlier miniature tokenizer)`,
        },
      );
  };
  await writeDirAtomic(
    dir,
    async (tmp) => {
      await writeWordLevelTokenizer(tmp, vocab, {
        // The exam prompts are scored without BOS, as the authors' harness did.
        addBosToken: false,
        modelMaxLength: maxLength,
        chatTemplate: MINIATURE_CHAT_TEMPLATE,
      });
    },
    { mayReplace },
  );
  return Object.keys(vocab).length;
}
