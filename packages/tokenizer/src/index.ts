export { type ChatTemplateOptions, renderChat } from "./chat.js";
export { type EncodedPair, moveTrailingWhitespace } from "./pair.js";
export {
  type DecodeOptions,
  type EncodeOptions,
  type EncodingWithOffsets,
  type HfTokenizer,
  type LoadTokenizerOptions,
  loadTokenizer,
} from "./tokenizer.js";
export {
  WORD_LEVEL_SPECIAL_TOKENS,
  type WordLevelTokenizerOptions,
  whitespaceWords,
  wordLevelTokenizerJson,
  writeWordLevelTokenizer,
} from "./word-level.js";
