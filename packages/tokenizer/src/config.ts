/**
 * Reading a HF model folder's tokenizer settings: `tokenizer_config.json` and `special_tokens_map.json`
 * (both optional). Special tokens may be plain strings or AddedToken dicts (`{"content": "<s>", ...}`).
 * Precedence follows transformers' `from_pretrained`: values in `special_tokens_map.json` override the same
 * keys of `tokenizer_config.json`.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describeValue, HippoError, isPlainObject, parseJsonSafe } from "@hippocrates/core";

/** transformers writes `int(1e30)` (VERY_LARGE_INTEGER) when a model sets no maximum length. */
const UNBOUNDED_MAX_LENGTH = 1e18;

export const SPECIAL_TOKEN_KEYS = ["bos_token", "eos_token", "unk_token", "pad_token"] as const;
export type SpecialTokenKey = (typeof SPECIAL_TOKEN_KEYS)[number];

export interface NamedTemplate {
  name: string;
  template: string;
}

export interface FolderConfig {
  /** Token strings per role; null when set to null, undefined when the folder does not mention the role. */
  specialTokens: Record<SpecialTokenKey, string | null | undefined>;
  additionalSpecialTokens: string[];
  addBosToken: boolean | undefined;
  addEosToken: boolean | undefined;
  modelMaxLength: number | null;
  /** `tokenizer_class` from the config, e.g. "LlamaTokenizer"; null when absent. */
  tokenizerClass: string | null;
  /** The chat template(s) as the config stores them; null when none. */
  chatTemplate: string | NamedTemplate[] | null;
  /** Where the chat template came from (for error messages). */
  chatTemplateFile: string | null;
}

/** Reads a text file; `undefined` when it does not exist and `optional` is set. */
export async function readText(file: string, optional: boolean): Promise<string | undefined> {
  try {
    return await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" && optional) return undefined;
    if (code === "ENOENT") throw new HippoError("NOT_FOUND", "required file is missing", { file, cause: e });
    throw new HippoError("IO", `cannot read file: ${(e as Error).message}`, { file, cause: e });
  }
}

async function readJsonObject(file: string): Promise<Record<string, unknown> | undefined> {
  const text = await readText(file, true);
  if (text === undefined) return undefined;
  const value = parseJsonSafe(text, file);
  if (!isPlainObject(value)) {
    throw new HippoError("INVALID_FORMAT", "expected a JSON object at the top level", {
      file,
      expected: "object",
      got: describeValue(value),
    });
  }
  return value;
}

/** A special token as a string: either the string itself or an AddedToken dict's `content`. */
function tokenContent(value: unknown, file: string, key: string): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  if (isPlainObject(value) && typeof value.content === "string") return value.content;
  throw new HippoError("INVALID_CONFIG", "a special token must be a string or an AddedToken dict", {
    file,
    key,
    expected: 'string or {"content": string}',
    got: describeValue(value),
  });
}

function optionalBoolean(obj: Record<string, unknown>, key: string, file: string): boolean | undefined {
  const v = obj[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "boolean") {
    throw new HippoError("INVALID_CONFIG", "expected a boolean", {
      file,
      key,
      expected: "true or false",
      got: describeValue(v),
    });
  }
  return v;
}

function parseMaxLength(obj: Record<string, unknown>, file: string): number | null {
  const v = obj.model_max_length;
  if (v === undefined || v === null) return null;
  if (
    typeof v !== "number" ||
    !Number.isFinite(v) ||
    v <= 0 ||
    (v < UNBOUNDED_MAX_LENGTH && !Number.isInteger(v))
  ) {
    throw new HippoError("INVALID_CONFIG", "model_max_length must be a positive integer", {
      file,
      key: "model_max_length",
      expected: "positive integer",
      got: describeValue(v),
    });
  }
  return v >= UNBOUNDED_MAX_LENGTH ? null : v;
}

export function parseChatTemplate(value: unknown, file: string): string | NamedTemplate[] | null {
  if (value === undefined || value === null) return null;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    return value.map((entry, row) => {
      if (!isPlainObject(entry) || typeof entry.name !== "string" || typeof entry.template !== "string") {
        throw new HippoError("INVALID_CONFIG", "each named chat template must be {name, template}", {
          file,
          key: `chat_template[${row}]`,
          expected: "{name: string, template: string}",
          got: describeValue(entry),
        });
      }
      return { name: entry.name, template: entry.template };
    });
  }
  throw new HippoError("INVALID_CONFIG", "chat_template must be a string or a list of {name, template}", {
    file,
    key: "chat_template",
    expected: "string or array",
    got: describeValue(value),
  });
}

export async function readFolderConfig(dir: string): Promise<FolderConfig> {
  const configFile = join(dir, "tokenizer_config.json");
  const mapFile = join(dir, "special_tokens_map.json");
  const config = (await readJsonObject(configFile)) ?? Object.create(null);
  const map = (await readJsonObject(mapFile)) ?? Object.create(null);

  const specialTokens = Object.create(null) as FolderConfig["specialTokens"];
  for (const key of SPECIAL_TOKEN_KEYS) {
    const fromMap = key in map ? tokenContent(map[key], mapFile, key) : null;
    specialTokens[key] = fromMap ?? (key in config ? tokenContent(config[key], configFile, key) : undefined);
  }

  const additionalRaw = map.additional_special_tokens ?? config.additional_special_tokens ?? [];
  const additionalFile = map.additional_special_tokens !== undefined ? mapFile : configFile;
  if (!Array.isArray(additionalRaw)) {
    throw new HippoError("INVALID_CONFIG", "additional_special_tokens must be a list", {
      file: additionalFile,
      key: "additional_special_tokens",
      expected: "array",
      got: describeValue(additionalRaw),
    });
  }
  const additionalSpecialTokens = additionalRaw.map(
    (v, i) => tokenContent(v, additionalFile, `additional_special_tokens[${i}]`) ?? "",
  );

  const tokenizerClass = config.tokenizer_class;
  let chatTemplate = parseChatTemplate(config.chat_template, configFile);
  let chatTemplateFile: string | null = chatTemplate === null ? null : configFile;
  if (chatTemplate === null) {
    // Newer transformers versions save the template beside the config instead of inside it.
    const jinjaFile = join(dir, "chat_template.jinja");
    const text = await readText(jinjaFile, true);
    if (text !== undefined) {
      chatTemplate = text;
      chatTemplateFile = jinjaFile;
    }
  }

  return {
    specialTokens,
    additionalSpecialTokens,
    addBosToken: optionalBoolean(config, "add_bos_token", configFile),
    addEosToken: optionalBoolean(config, "add_eos_token", configFile),
    modelMaxLength: parseMaxLength(config, configFile),
    tokenizerClass: typeof tokenizerClass === "string" ? tokenizerClass : null,
    chatTemplate,
    chatTemplateFile,
  };
}
