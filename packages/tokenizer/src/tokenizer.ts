/**
 * `loadTokenizer(dir)`: a HF model folder's fast tokenizer (`tokenizer.json`, run by the official `tokenizers`
 * Rust binding) with the settings transformers' `AutoTokenizer` takes from `tokenizer_config.json` and
 * `special_tokens_map.json`: special tokens, `add_bos_token` / `add_eos_token`, `model_max_length`, chat template.
 */
import { join } from "node:path";
import type { ChatMessage, TextTokenizer } from "@hippocrates/core";
import { describeValue, HippoError, parseJsonSafe } from "@hippocrates/core";
import { type HubOptions, resolvePretrained } from "@hippocrates/hub";
import { Tokenizer, templateProcessing } from "tokenizers";
import { type ChatTemplateOptions, renderChat, selectTemplate } from "./chat.js";
import {
  parseChatTemplate,
  readFolderConfig,
  readText,
  SPECIAL_TOKEN_KEYS,
  type SpecialTokenKey,
} from "./config.js";
import { charToUtf16Offsets } from "./offsets.js";
import { type EncodedPair, encodePairWith } from "./pair.js";

export interface EncodeOptions {
  /**
   * Add the special tokens of the tokenizer's template (BOS per `add_bos_token`, EOS per `add_eos_token`).
   * Default true, as transformers' `tokenizer(text)` / `tokenizer.encode(text)`.
   */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Drop special tokens (`<s>`, `</s>`, ...) from the text. Default false, as transformers. */
  skipSpecialTokens?: boolean;
}

export interface LoadTokenizerOptions {
  /** Override `add_bos_token` of tokenizer_config.json. */
  addBosToken?: boolean;
  /** Override `add_eos_token` of tokenizer_config.json. */
  addEosToken?: boolean;
  /** Use this chat template instead of the folder's. */
  chatTemplate?: string;
  /** Hub revision when the tokenizer is named by a Hub id. */
  revision?: string;
  /** Cache, endpoint, token, offline mode and progress for Hub ids (default: the environment). */
  hub?: HubOptions;
}

export interface EncodingWithOffsets {
  ids: number[];
  /** `[start, end)` of each token in the input, in UTF-16 code units (so `text.slice(start, end)` works). */
  offsets: [number, number][];
  tokens: string[];
}

export interface HfTokenizer extends TextTokenizer {
  readonly dir: string;
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly padToken: string | null;
  readonly unkToken: string | null;
  readonly addBosToken: boolean;
  readonly addEosToken: boolean;
  /** `model_max_length`; null when the config sets none (or transformers' "unbounded" 1e30). */
  readonly modelMaxLength: number | null;
  /** The default chat template (string form); null when the folder has none. */
  readonly chatTemplate: string | null;
  encode(text: string, options?: EncodeOptions): Promise<number[]>;
  encodeBatch(texts: string[], options?: EncodeOptions): Promise<number[][]>;
  encodeWithOffsets(text: string, options?: EncodeOptions): Promise<EncodingWithOffsets>;
  decode(ids: number[], options?: DecodeOptions): Promise<string>;
  decodeBatch(ids: number[][], options?: DecodeOptions): Promise<string[]>;
  /**
   * lm-evaluation-harness `_encode_pair`: trailing whitespace of the context moves to the continuation;
   * whole = encode(context + continuation), ctx = encode(context), continuation tokens = whole.slice(ctx.length).
   * An empty context is replaced by the EOS (end-of-text) token, as the harness does: `{context: [eos],
   * continuation: encode(continuation, no special tokens)}`. Throws on an empty continuation.
   */
  encodePair(context: string, continuation: string, options?: EncodeOptions): Promise<EncodedPair>;
  applyChatTemplate(messages: ChatMessage[], options?: ChatTemplateOptions): string;
  tokenToId(token: string): number | null;
  idToToken(id: number): string | null;
}

/**
 * Tokenizer classes whose transformers fast tokenizer rebuilds the post-processor from `add_bos_token` and
 * `add_eos_token` (`LlamaTokenizerFast.update_post_processor` and its copies), with the special tokens their
 * constructors default to when a folder does not name them.
 */
const BOS_EOS_CLASSES: Record<string, Partial<Record<SpecialTokenKey, string>>> = {
  LlamaTokenizer: { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" },
  CodeLlamaTokenizer: { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" },
  GemmaTokenizer: { bos_token: "<bos>", eos_token: "<eos>", unk_token: "<unk>", pad_token: "<pad>" },
};

function classDefaults(tokenizerClass: string | null): Partial<Record<SpecialTokenKey, string>> | undefined {
  if (tokenizerClass === null) return undefined;
  return BOS_EOS_CLASSES[tokenizerClass.replace(/Fast$/, "")];
}

/**
 * The TemplateProcessing that `LlamaTokenizerFast.update_post_processor` builds:
 * single = "[bos:0] $A:0 [eos:0]", pair = single + " [bos:1] $B:1 [eos:1]".
 */
function bosEosTemplate(bos: [string, number] | null, eos: [string, number] | null) {
  const single = [bos && `${bos[0]}:0`, "$A:0", eos && `${eos[0]}:0`].filter(Boolean).join(" ");
  const pair = [single, bos && `${bos[0]}:1`, "$B:1", eos && `${eos[0]}:1`].filter(Boolean).join(" ");
  const special = [bos, eos].filter((t): t is [string, number] => t !== null);
  return templateProcessing(single, pair, special);
}

function checkText(text: unknown, key: string): asserts text is string {
  if (typeof text !== "string") {
    throw new HippoError("INVALID_ARGUMENT", "text to encode must be a string", {
      key,
      expected: "string",
      got: describeValue(text),
    });
  }
}

export async function loadTokenizer(
  nameOrPath: string,
  options: LoadTokenizerOptions = {},
): Promise<HfTokenizer> {
  // A local folder, or a Hub id `org/name[@rev]` fetched through the Hugging Face cache.
  const { path: dir } = await resolvePretrained(nameOrPath, "tokenizer", {
    ...options.hub,
    revision: options.revision,
  });
  const tokenizerFile = join(dir, "tokenizer.json");
  const json = (await readText(tokenizerFile, false))!;
  let engine: Tokenizer;
  try {
    engine = Tokenizer.fromString(json);
  } catch (e) {
    // Parse it ourselves only on failure (the file is megabytes): a JSON syntax error then names the file
    // and position; valid JSON the engine rejects gets the engine's reason.
    parseJsonSafe(json, tokenizerFile);
    throw new HippoError(
      "INVALID_FORMAT",
      `not a tokenizer the tokenizers library can load: ${(e as Error).message}`,
      {
        file: tokenizerFile,
        cause: e,
      },
    );
  }
  const config = await readFolderConfig(dir);
  const configFile = join(dir, "tokenizer_config.json");

  // Special tokens: the folder's, else (for the Llama family) the class constructor's defaults.
  const defaults = classDefaults(config.tokenizerClass);
  const specialTokens = Object.create(null) as Record<SpecialTokenKey, string | null>;
  for (const key of SPECIAL_TOKEN_KEYS) specialTokens[key] = config.specialTokens[key] ?? null;
  if (defaults !== undefined) {
    for (const key of SPECIAL_TOKEN_KEYS) {
      if (config.specialTokens[key] === undefined) specialTokens[key] = defaults[key] ?? null;
    }
  }

  const idOf = (key: SpecialTokenKey): number | null => {
    const token = specialTokens[key];
    if (token === null) return null;
    const id = engine.tokenToId(token);
    if (id === null) {
      throw new HippoError("INVALID_CONFIG", `${key} "${token}" is not in the vocabulary of tokenizer.json`, {
        file: configFile,
        key,
        got: token,
      });
    }
    return id;
  };
  const bosTokenId = idOf("bos_token");
  const eosTokenId = idOf("eos_token");
  const padTokenId = idOf("pad_token");
  const unkTokenId = idOf("unk_token");
  const { bos_token: bosToken, eos_token: eosToken } = specialTokens;

  // BOS/EOS policy. Llama-family tokenizers (and any folder or caller that sets the flags) get the
  // post-processor transformers builds from add_bos_token (default true) / add_eos_token (default false);
  // other tokenizers keep the post-processor of their tokenizer.json, as transformers does.
  const isLlamaFamily = defaults !== undefined;
  const bosFlag = options.addBosToken ?? config.addBosToken;
  const eosFlag = options.addEosToken ?? config.addEosToken;
  if (isLlamaFamily || bosFlag !== undefined || eosFlag !== undefined) {
    const addBos = bosFlag ?? true;
    const addEos = eosFlag ?? false;
    for (const [wanted, token, id, key] of [
      [addBos, bosToken, bosTokenId, "bos_token"],
      [addEos, eosToken, eosTokenId, "eos_token"],
    ] as const) {
      if (wanted && (token === null || id === null)) {
        throw new HippoError("INVALID_CONFIG", `add_${key} is set but the folder defines no ${key}`, {
          file: configFile,
          key,
          expected: "a special token",
          got: "none",
        });
      }
    }
    engine.setPostProcessor(
      bosEosTemplate(addBos ? [bosToken!, bosTokenId!] : null, addEos ? [eosToken!, eosTokenId!] : null),
    );
  }
  // Read the flags back from what the engine does, so they are true for kept post-processors as well.
  const probe = (await engine.encode("", null, { addSpecialTokens: true })).getIds();
  const addBosToken = bosTokenId !== null && probe[0] === bosTokenId;
  const addEosToken = eosTokenId !== null && probe.length > 0 && probe[probe.length - 1] === eosTokenId;

  const chatTemplates =
    options.chatTemplate !== undefined
      ? parseChatTemplate(options.chatTemplate, "options")
      : config.chatTemplate;
  const chatSource = options.chatTemplate !== undefined ? null : config.chatTemplateFile;
  const defaultTemplate =
    chatTemplates === null
      ? null
      : typeof chatTemplates === "string"
        ? chatTemplates
        : (chatTemplates.find((t) => t.name === "default")?.template ?? null);

  const vocabSize = engine.getVocabSize(true);
  const checkIds = (ids: unknown, key: string): number[] => {
    if (!Array.isArray(ids)) {
      throw new HippoError("INVALID_ARGUMENT", "token ids must be an array", {
        key,
        expected: "number[]",
        got: describeValue(ids),
      });
    }
    ids.forEach((id, row) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new HippoError("INVALID_ARGUMENT", "token id out of range", {
          key: `${key}[${row}]`,
          expected: `an integer in [0, ${vocabSize})`,
          got: describeValue(id),
        });
      }
    });
    return ids;
  };
  const addSpecial = (o: EncodeOptions | undefined) => o?.addSpecialTokens ?? true;

  const encode = async (text: string, o?: EncodeOptions): Promise<number[]> => {
    checkText(text, "text");
    return (await engine.encode(text, null, { addSpecialTokens: addSpecial(o) })).getIds();
  };

  // As transformers, only the special tokens that are set reach the template: an unset one is undefined
  // there (renders as ""), not None.
  const specialTokensForTemplates: Record<string, unknown> = {
    additional_special_tokens: config.additionalSpecialTokens,
  };
  for (const key of SPECIAL_TOKEN_KEYS) {
    if (specialTokens[key] !== null) specialTokensForTemplates[key] = specialTokens[key];
  }

  return {
    dir,
    vocabSize,
    bosTokenId,
    eosTokenId,
    padTokenId,
    unkTokenId,
    bosToken,
    eosToken,
    padToken: specialTokens.pad_token,
    unkToken: specialTokens.unk_token,
    addBosToken,
    addEosToken,
    modelMaxLength: config.modelMaxLength,
    chatTemplate: defaultTemplate,
    encode,
    async encodeBatch(texts, o) {
      if (!Array.isArray(texts)) {
        throw new HippoError("INVALID_ARGUMENT", "texts to encode must be an array of strings", {
          key: "texts",
          expected: "string[]",
          got: describeValue(texts),
        });
      }
      for (const [i, t] of texts.entries()) checkText(t, `texts[${i}]`);
      if (texts.length === 0) return [];
      const encodings = await engine.encodeBatch(texts, { addSpecialTokens: addSpecial(o) });
      return encodings.map((e) => e.getIds());
    },
    async encodeWithOffsets(text, o) {
      checkText(text, "text");
      const enc = await engine.encode(text, null, { addSpecialTokens: addSpecial(o) });
      return {
        ids: enc.getIds(),
        tokens: enc.getTokens(),
        offsets: charToUtf16Offsets(text, enc.getOffsets()),
      };
    },
    async decode(ids, o) {
      return engine.decode(checkIds(ids, "ids"), o?.skipSpecialTokens ?? false);
    },
    async decodeBatch(batch, o) {
      if (!Array.isArray(batch)) checkIds(batch, "ids");
      for (const [i, ids] of batch.entries()) checkIds(ids, `ids[${i}]`);
      if (batch.length === 0) return [];
      return engine.decodeBatch(batch, o?.skipSpecialTokens ?? false);
    },
    async encodePair(context, continuation, o) {
      const special = addSpecial(o);
      if (special && addEosToken) {
        // With EOS appended, ctx ends in EOS and whole[len(ctx):] would drop the continuation's first token.
        throw new HippoError("UNSUPPORTED", "encodePair with an EOS-appending template would split wrongly", {
          expected: "addSpecialTokens: false, or a tokenizer loaded without add_eos_token",
        });
      }
      if (context === "") {
        if (eosTokenId === null) {
          throw new HippoError("INVALID_CONFIG", "an empty context needs an EOS token to stand for it", {
            file: configFile,
            key: "eos_token",
          });
        }
        checkText(continuation, "continuation");
        if (continuation === "") {
          throw new HippoError("INVALID_ARGUMENT", "the continuation is empty: there is nothing to score", {
            key: "continuation",
          });
        }
        return {
          context: [eosTokenId],
          continuation: await encode(continuation, { addSpecialTokens: false }),
        };
      }
      return encodePairWith((t) => encode(t, { addSpecialTokens: special }), context, continuation);
    },
    applyChatTemplate(messages, o = {}) {
      const template = selectTemplate(chatTemplates, o.templateName, chatSource);
      return renderChat(template, messages, specialTokensForTemplates, o);
    },
    tokenToId(token) {
      return engine.tokenToId(token);
    },
    idToToken(id) {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) return null;
      return engine.idToToken(id);
    },
  };
}
