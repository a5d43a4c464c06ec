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
