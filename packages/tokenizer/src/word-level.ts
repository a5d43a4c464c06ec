/**
 * Word-level tokenizer folders: HF tokenizers' `WordLevel` model behind the `Whitespace` pre-tokenizer, with a
 * WordPiece decoder for tidy spacing, and the four special tokens `<unk> <s> </s> <pad>` at ids 0-3. For small
 * models whose vocabulary is exactly the words of a corpus (the CLI's miniature, tests): every word is one token,
 * so the embedding and lm_head stay tiny. The files are the ones transformers' `PreTrainedTokenizerFast` and
 * `loadTokenizer` read (tokenizer.json in the `tokenizers` 0.x serialisation, version "1.0").
 */
import { join } from "node:path";
import { HippoError, writeFileAtomic, writeJsonAtomic } from "@hippocrates/core";

/** The special tokens, at ids 0, 1, 2, 3 (unk, BOS, EOS, pad). */
export const WORD_LEVEL_SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"] as const;

/** HF's `Whitespace` pre-tokenizer (`\w+|[^\w\s]+`): the words a WordLevel vocabulary must hold. */
export function whitespaceWords(text: string): string[] {
  return text.match(/\w+|[^\w\s]+/gu) ?? [];
}

/** The `tokenizer.json` of a WordLevel tokenizer over `vocab` (word -> id, the special tokens at 0-3). */
export function wordLevelTokenizerJson(vocab: Readonly<Record<string, number>>): Record<string, unknown> {
  WORD_LEVEL_SPECIAL_TOKENS.forEach((token, id) => {
    if (vocab[token] !== id)
      throw new HippoError(
        "INVALID_ARGUMENT",
        "the special tokens must come first in a word-level vocabulary",
        {
          key: token,
          expected: `id ${id}`,
          got: String(vocab[token]),
        },
      );
  });
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: WORD_LEVEL_SPECIAL_TOKENS.map((content, id) => ({
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
  };
}

export interface WordLevelTokenizerOptions {
  /** `add_bos_token` of tokenizer_config.json. */
  addBosToken: boolean;
  /** Jinja chat template, as transformers stores it. */
  chatTemplate: string;
  /** `model_max_length`; omitted from the config when not given. */
  modelMaxLength?: number;
}

/**
 * Write `tokenizer.json` and `tokenizer_config.json` (class PreTrainedTokenizerFast, the special tokens, no
 * EOS added) into `dir`, each file atomically. A caller that must replace a whole folder wraps this in core's
 * `writeDirAtomic`.
 */
export async function writeWordLevelTokenizer(
  dir: string,
  vocab: Readonly<Record<string, number>>,
  options: WordLevelTokenizerOptions,
): Promise<void> {
  await writeFileAtomic(join(dir, "tokenizer.json"), JSON.stringify(wordLevelTokenizerJson(vocab)));
  const [unk, bos, eos, pad] = WORD_LEVEL_SPECIAL_TOKENS;
  await writeJsonAtomic(join(dir, "tokenizer_config.json"), {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: bos,
    eos_token: eos,
    unk_token: unk,
    pad_token: pad,
    add_bos_token: options.addBosToken,
    add_eos_token: false,
    model_max_length: options.modelMaxLength,
    chat_template: options.chatTemplate,
  });
}
