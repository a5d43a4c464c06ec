/**
 * Training files -> tokenized examples: the one place where the records of a CPT, SFT or DPO data file are
 * recognised, checked and tokenized. Records are read with `readRawRecords`, so JSONL, JSON, CSV and Parquet
 * files all work.
 *
 * Accepted formats are TRL's (docs/source/dataset_formats.md of huggingface/trl at commit 0087e4f5, the
 * "Dataset formats and types" guide; `extract_prompt` from trl/data_utils.py at commit 00cc012a), standard
 * (strings) and conversational (lists of `{role, content}` messages), plus Alpaca:
 *
 * | stage | record                                                     | loss on                                  |
 * | ----- | ---------------------------------------------------------- | ---------------------------------------- |
 * | cpt   | `{text}` (language modelling)                              | every token (documents packed into blocks) |
 * | sft   | `{text}` (language modelling)                              | every token                              |
 * | sft   | `{messages}` (conversational language modelling)           | assistant turns                          |
 * | sft   | `{prompt, completion}`, both strings or both message lists | the completion (TRL's completion_only_loss) |
 * | sft   | `{instruction, input?, output, system?}` (Alpaca)          | the output                               |
 * | dpo   | `{prompt, chosen, rejected}` (explicit prompt)             | -                                        |
 * | dpo   | `{chosen, rejected}` (implicit prompt: TRL's extract_prompt) | -                                      |
 *
 * Other keys of a record (`id`, `source`, ...) are ignored. A record that fits none of its stage's formats is
 * an error naming file, line and the keys it has.
 *
 * Templates: conversational and Alpaca records go through the stage's prompt template (`default`, `chatml`,
 * `tokenizer` = the tokenizer's chat template, or a custom string with `{prompt}`). A standard string prompt
 * is the user's turn and its completion (or chosen/rejected) the assistant's, rendered through the same
 * template, which is how this project's own data files (`hippo data`) are written; with `template: "none"`
 * standard strings are literal text, exactly as TRL's trainers read them. `text` records and implicit-prompt
 * string pairs are always literal (they are whole sequences with no roles).
 *
 * Where this differs from TRL, on purpose: conversational language-modelling records (`messages`) train on
 * the assistant turns only (the paper's and LLaMA-Factory's SFT; TRL's default `assistant_only_loss=False`
 * trains on every token), and a conversational prompt must end with a user turn (TRL's
 * `continue_final_message` is not supported).
 */
import type { ChatMessage, TextTokenizer, TokenizedExample, TokenizedPreference } from "@hippocrates/core";
import { describeValue, HippoError, IGNORE_INDEX, isPlainObject } from "@hippocrates/core";
import { z } from "zod";
import { createPacker } from "./cpt.js";
import { type RawRecord, type RecordLocation, readRawRecords } from "./read.js";
import {
  type ChatTemplateTokenizer,
  DEFAULT_TEMPLATE,
  encodeSegments,
  type PromptTemplate,
  renderSegments,
  type StringTemplate,
  templateByName,
  tokenizeInstruction,
} from "./sft-tokenize.js";
import { validateRecord } from "./validate.js";

// ---------------------------------------------------------------------------------------------------------
// Records.

/** A CPT record: one document. */
export interface TextRecord {
  text: string;
}

/** An SFT record in one of TRL's shapes (Alpaca arrives as `messages`). */
export type SftRecord =
  | { text: string }
  | { messages: ChatMessage[] }
  | { prompt: string; completion: string }
  | { prompt: ChatMessage[]; completion: ChatMessage[] };

/** A preference pair with its prompt explicit (an implicit prompt has been extracted). */
export type PreferencePair =
  | { prompt: string; chosen: string; rejected: string }
  | { prompt: ChatMessage[]; chosen: ChatMessage[]; rejected: ChatMessage[] };

export type TrainingDataKind = "cpt" | "sft" | "dpo";

export type TrainingRecordOf<K extends TrainingDataKind> = K extends "cpt"
  ? TextRecord
  : K extends "sft"
    ? SftRecord
    : PreferencePair;

/** The keys that decide a record's format; any other key is carried along and ignored. */
const FORMAT_KEYS = [
  "text",
  "messages",
  "prompt",
  "completion",
  "chosen",
  "rejected",
  "instruction",
  "input",
  "output",
] as const;

const EXPECTED: Record<TrainingDataKind, string> = {
  cpt: '{"text"} (language modelling: one document per record)',
  sft: '{"text"}, {"messages"}, {"prompt", "completion"} (strings or message lists), or Alpaca {"instruction", "input"?, "output"}',
  dpo: '{"prompt", "chosen", "rejected"} or {"chosen", "rejected"} (strings or message lists)',
};

const message = z.strictObject({
  role: z.enum(["system", "user", "assistant"]),
  content: z.string(),
});
const messages = z.array(message).min(1, "must hold at least one message");
const text = z.string().refine((s) => s.length > 0, "must not be empty");

const schemas = {
  text: z.object({ text }),
  messages: z.object({ messages }),
  promptCompletionText: z.object({ prompt: z.string(), completion: text }),
  promptCompletionChat: z.object({ prompt: messages, completion: messages }),
  alpaca: z.object({
    instruction: z.string(),
    input: z.string().nullish(),
    output: text,
    system: z.string().nullish(),
  }),
  preferenceText: z.object({ prompt: z.string(), chosen: text, rejected: text }),
  preferenceChat: z.object({ prompt: messages, chosen: messages, rejected: messages }),
  implicitText: z.object({ chosen: text, rejected: text }),
  implicitChat: z.object({ chosen: messages, rejected: messages }),
};

function noFormat(kind: TrainingDataKind, raw: RawRecord, why?: string): HippoError {
  const loc = raw.loc;
  const keys = isPlainObject(raw.value) ? Object.keys(raw.value) : [];
  return new HippoError("INVALID_RECORD", `the record fits no ${kind} data format${why ? ` (${why})` : ""}`, {
    file: loc.file,
    ...(loc.line !== undefined ? { line: loc.line } : { row: loc.row }),
    expected: EXPECTED[kind],
    got: keys.length ? `keys ${keys.map((k) => JSON.stringify(k)).join(", ")}` : "an empty object",
  });
}

function recordError(raw: RawRecord, key: string, message: string, expected?: string): HippoError {
  const loc = raw.loc;
  return new HippoError("INVALID_RECORD", message, {
    file: loc.file,
    ...(loc.line !== undefined ? { line: loc.line } : { row: loc.row }),
    key,
    expected,
  });
}

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((k) => b.includes(k));

/** A conversational prompt ends with the user (or system) turn the completion answers. */
function checkPromptEnd(raw: RawRecord, key: string, prompt: ChatMessage[]): void {
  if (prompt.at(-1)?.role === "assistant")
    throw recordError(
      raw,
      key,
      "a conversational prompt must end with a user turn (continuing an assistant message is not supported)",
      'last message with role "user" or "system"',
    );
}

function checkCompletionStart(raw: RawRecord, key: string, completion: ChatMessage[]): void {
  if (completion[0]?.role !== "assistant")
    throw recordError(
      raw,
      key,
      "a conversational completion starts with the assistant's turn",
      '"assistant"',
    );
}

/**
 * TRL's `extract_prompt` (trl/data_utils.py): the longest common prefix of chosen and rejected is the prompt,
 * characters for strings (a space just before the first difference goes to the responses), messages for
 * conversations. As in TRL, when one response is a prefix of the other the prompt stops one element short.
 */
export function extractPrompt<T extends string | ChatMessage[]>(
  chosen: T,
  rejected: T,
): { prompt: T; chosen: T; rejected: T } {
  const eq = (i: number) =>
    typeof chosen === "string"
      ? chosen[i] === rejected[i]
      : (chosen[i] as ChatMessage).role === (rejected[i] as ChatMessage).role &&
        (chosen[i] as ChatMessage).content === (rejected[i] as ChatMessage).content;
  const n = Math.min(chosen.length, rejected.length);
  let idx = 0;
  let differ = false;
  for (; idx < n; idx++) {
    if (!eq(idx)) {
      differ = true;
      if (idx > 0 && typeof chosen === "string" && chosen[idx - 1] === " ") idx -= 1;
      break;
    }
  }
  if (!differ) idx = n - 1; // Python's loop variable after a loop without break
  return {
    prompt: chosen.slice(0, idx) as T,
    chosen: chosen.slice(idx) as T,
    rejected: rejected.slice(idx) as T,
  };
}

function objectOf(kind: TrainingDataKind, raw: RawRecord): Record<string, unknown> {
  if (isPlainObject(raw.value)) return raw.value;
  throw new HippoError("INVALID_RECORD", "a record must be an object", {
    file: raw.loc.file,
    ...(raw.loc.line !== undefined ? { line: raw.loc.line } : { row: raw.loc.row }),
    expected: EXPECTED[kind],
    got: describeValue(raw.value),
  });
}

/** The format keys a record has (null counts as absent, as a missing CSV/Parquet value). */
const formatKeys = (value: Record<string, unknown>) =>
  FORMAT_KEYS.filter((k) => value[k] !== undefined && value[k] !== null);

function parseTextRecord(raw: RawRecord): TextRecord {
  if (!same(formatKeys(objectOf("cpt", raw)), ["text"])) throw noFormat("cpt", raw);
  return validateRecord(schemas.text, raw);
}

function parseSftRecord(raw: RawRecord): SftRecord {
  const value = objectOf("sft", raw);
  const found = formatKeys(value);
  if (same(found, ["text"])) return validateRecord(schemas.text, raw);
  if (same(found, ["messages"])) {
    const r = validateRecord(schemas.messages, raw);
    if (!r.messages.some((m) => m.role === "assistant"))
      throw recordError(raw, "messages", "a conversation without an assistant turn has nothing to learn");
    return r;
  }
  if (same(found, ["prompt", "completion"])) {
    if (Array.isArray(value.prompt) !== Array.isArray(value.completion))
      throw noFormat("sft", raw, "prompt and completion must both be strings or both message lists");
    if (!Array.isArray(value.prompt)) return validateRecord(schemas.promptCompletionText, raw);
    const r = validateRecord(schemas.promptCompletionChat, raw);
    checkPromptEnd(raw, "prompt", r.prompt);
    checkCompletionStart(raw, "completion", r.completion);
    return r;
  }
  if (
    found.includes("instruction") &&
    found.includes("output") &&
    found.every((k) => ["instruction", "input", "output"].includes(k))
  ) {
    const r = validateRecord(schemas.alpaca, raw);
    const conversation: ChatMessage[] = [];
    if (r.system) conversation.push({ role: "system", content: r.system });
    // As LLaMA-Factory and @hippocrates/data's readInstructions: instruction and input joined by a newline.
    conversation.push({ role: "user", content: r.input ? `${r.instruction}\n${r.input}` : r.instruction });
    conversation.push({ role: "assistant", content: r.output });
    return { messages: conversation };
  }
  throw noFormat("sft", raw);
}

/** An implicit prompt made explicit, or the record's error when the two responses share none. */
function implicitPair<T extends string | ChatMessage[]>(
  raw: RawRecord,
  chosen: T,
  rejected: T,
): { prompt: T; chosen: T; rejected: T } {
  if (JSON.stringify(chosen) === JSON.stringify(rejected))
    throw recordError(raw, "chosen, rejected", "chosen and rejected are identical");
  const pair = extractPrompt(chosen, rejected);
  if (pair.prompt.length === 0)
    throw recordError(
      raw,
      "chosen, rejected",
      "chosen and rejected share no prompt (implicit-prompt preference)",
      "a common beginning",
    );
  if (pair.chosen.length === 0 || pair.rejected.length === 0)
    throw recordError(raw, "chosen, rejected", "chosen and rejected are the same after their shared prompt");
  return pair;
}

function parsePreferencePair(raw: RawRecord): PreferencePair {
  const value = objectOf("dpo", raw);
  const found = formatKeys(value);
  const lists = (keys: string[]) => keys.map((k) => Array.isArray(value[k]));
  if (same(found, ["prompt", "chosen", "rejected"])) {
    const l = lists(["prompt", "chosen", "rejected"]);
    if (l.some((x) => x !== l[0]))
      throw noFormat("dpo", raw, "prompt, chosen and rejected must all be strings or all message lists");
    if (!l[0]) return validateRecord(schemas.preferenceText, raw);
    const r = validateRecord(schemas.preferenceChat, raw);
    checkPromptEnd(raw, "prompt", r.prompt);
    checkCompletionStart(raw, "chosen", r.chosen);
    checkCompletionStart(raw, "rejected", r.rejected);
    return r;
  }
  if (same(found, ["chosen", "rejected"])) {
    const [chosenIsList, rejectedIsList] = lists(["chosen", "rejected"]);
    if (chosenIsList !== rejectedIsList)
      throw noFormat("dpo", raw, "chosen and rejected must both be strings or both message lists");
    if (!chosenIsList) {
      const r = validateRecord(schemas.implicitText, raw);
      return implicitPair(raw, r.chosen, r.rejected);
    }
    const r = validateRecord(schemas.implicitChat, raw);
    const pair = implicitPair(raw, r.chosen, r.rejected);
    checkPromptEnd(raw, "chosen", pair.prompt);
    checkCompletionStart(raw, "chosen", pair.chosen);
    checkCompletionStart(raw, "rejected", pair.rejected);
    return pair;
  }
  throw noFormat("dpo", raw);
}

const PARSERS: { [K in TrainingDataKind]: (raw: RawRecord) => TrainingRecordOf<K> } = {
  cpt: parseTextRecord,
  sft: parseSftRecord,
  dpo: parsePreferencePair,
};

/** Recognise one raw record as a record of `kind`; throws a HippoError naming file, line and keys. */
export function parseTrainingRecord<K extends TrainingDataKind>(
  kind: K,
  raw: RawRecord,
): TrainingRecordOf<K> {
  return PARSERS[kind](raw);
}

/** The records of a training file (any format `readRawRecords` reads), recognised for `kind`. */
export async function* readTrainingRecords<K extends TrainingDataKind>(
  file: string,
  kind: K,
): AsyncGenerator<{ record: TrainingRecordOf<K>; loc: RecordLocation }> {
  for await (const raw of readRawRecords(file))
    yield { record: parseTrainingRecord(kind, raw), loc: raw.loc };
}

/**
 * Pre-flight check of a training file without tokenizing: it exists, is a file of a known format, and its
 * first `records` records (default 16) are of a format `kind` accepts. Throws the HippoError of the first
 * problem (file, line, keys); returns how many records were looked at.
 */
export async function checkTrainingFile(
  file: string,
  kind: TrainingDataKind,
  options: { records?: number } = {},
): Promise<number> {
  const limit = options.records ?? 16;
  let n = 0;
  for await (const raw of readRawRecords(file)) {
    parseTrainingRecord(kind, raw);
    if (++n >= limit) break;
  }
  if (n === 0)
    throw new HippoError("INVALID_ARGUMENT", "the data file holds no records", {
      file,
      expected: EXPECTED[kind],
    });
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// Templates.

/** A prompt template, or `none`: standard (string) records taken literally, as TRL does. */
export type TrainingTemplate = PromptTemplate | { kind: "none" };

/**
 * The `template` setting of a stage: "default" (`Human: {prompt}\nAssistant: `, the authors' code base),
 * "chatml", "tokenizer" (the tokenizer's chat template), "none" (standard records literal, as TRL), or a
 * string with `{prompt}` (the response follows it).
 */
export function templateFromSetting(setting: string | undefined): TrainingTemplate {
  if (setting === undefined) return DEFAULT_TEMPLATE;
  if (setting === "none") return { kind: "none" };
  if (!setting.includes("{prompt}")) return templateByName(setting);
  return {
    kind: "string",
    name: "custom",
    system: "{content}\n",
    user: setting.replace("{prompt}", "{content}"),
    assistantSuffix: "",
    separator: "\n",
  };
}

/** The tokenizer the tokenizing functions use: `@hippocrates/tokenizer`'s HfTokenizer satisfies it. */
export type TrainingTokenizer = TextTokenizer &
  Partial<Pick<ChatTemplateTokenizer, "applyChatTemplate">> & {
    /** Whether the tokenizer's encoding starts with BOS (HF's add_bos_token); default: it has a BOS token. */
    readonly addBosToken?: boolean;
  };

function needsChat(template: TrainingTemplate): asserts template is PromptTemplate {
  if (template.kind === "none")
    throw new HippoError(
      "INVALID_CONFIG",
      'conversational records need a chat template; template "none" only fits standard (string) records',
      { key: "template", expected: 'tokenizer (TRL\'s choice), default, chatml or "...{prompt}..."' },
    );
}

function chatTokenizer(tokenizer: TrainingTokenizer): ChatTemplateTokenizer {
  if (typeof tokenizer.applyChatTemplate !== "function")
    throw new HippoError("UNSUPPORTED", 'template "tokenizer" needs a tokenizer with a chat template', {
      key: "template",
    });
  return tokenizer as ChatTemplateTokenizer;
}

const addsBos = (t: TrainingTokenizer) => (t.addBosToken ?? true) && t.bosTokenId !== null;

// ---------------------------------------------------------------------------------------------------------
// Tokenization.

/** A standard (string) prompt-completion record or pair, as opposed to a conversational one. */
function isStandard<R extends { prompt: string | ChatMessage[] }>(r: R): r is Extract<R, { prompt: string }> {
  return typeof r.prompt === "string";
}

export interface SftTokenizationOptions {
  template?: TrainingTemplate;
  /** Truncate to this many tokens (from the right). */
  maxLength?: number;
}

function truncate(ex: TokenizedExample, maxLength: number | undefined): TokenizedExample | undefined {
  if (maxLength !== undefined && ex.inputIds.length > maxLength) {
    ex.inputIds.length = maxLength;
    ex.labels.length = maxLength;
  }
  return ex.labels.some((l) => l !== IGNORE_INDEX) ? ex : undefined;
}

/**
 * One SFT record -> a TokenizedExample whose labels are IGNORE_INDEX where no loss is taken. Returns undefined
 * when truncation leaves no labelled token.
 *
 * - `{text}`: the tokenizer's encoding (BOS as the tokenizer adds it) + EOS, every token labelled.
 * - literal `{prompt, completion}` (template "none"): TRL's SFTTrainer: the prompt and prompt + completion are
 *   tokenized (special tokens as the tokenizer adds them), EOS appended, and the first len(prompt ids) tokens
 *   masked.
 * - everything else: a conversation through the template (`tokenizeInstruction`), trained from the completion.
 */
export async function tokenizeSftRecord(
  record: SftRecord,
  tokenizer: TrainingTokenizer,
  options: SftTokenizationOptions = {},
): Promise<TokenizedExample | undefined> {
  const template = options.template ?? DEFAULT_TEMPLATE;
  const eos = tokenizer.eosTokenId !== null ? [tokenizer.eosTokenId] : [];
  if ("text" in record) {
    const ids = [...(await tokenizer.encode(record.text, { addSpecialTokens: true })), ...eos];
    const labels = ids.map((id, i) =>
      i === 0 && addsBos(tokenizer) && id === tokenizer.bosTokenId ? IGNORE_INDEX : id,
    );
    return truncate({ inputIds: ids, labels }, options.maxLength);
  }
  let conversation: ChatMessage[];
  let trainFrom = 0;
  if ("messages" in record) conversation = record.messages;
  else if (isStandard(record)) {
    if (template.kind === "none") {
      const promptIds = await tokenizer.encode(record.prompt, { addSpecialTokens: true });
      const ids = [
        ...(await tokenizer.encode(record.prompt + record.completion, { addSpecialTokens: true })),
        ...eos,
      ];
      return truncate(
        { inputIds: ids, labels: ids.map((id, i) => (i < promptIds.length ? IGNORE_INDEX : id)) },
        options.maxLength,
      );
    }
    conversation = [
      { role: "user", content: record.prompt },
      { role: "assistant", content: record.completion },
    ];
    trainFrom = 1;
  } else {
    conversation = [...record.prompt, ...record.completion];
    trainFrom = record.prompt.length;
  }
  needsChat(template);
  return tokenizeInstruction({ id: "", source: "", messages: conversation }, tokenizer, {
    template,
    addBos: addsBos(tokenizer),
    addEos: true,
    trainFrom,
    ...(options.maxLength !== undefined ? { maxLength: options.maxLength } : {}),
  });
}

/**
 * One preference pair -> prompt, chosen and rejected ids (the prompt shared).
 *
 * - literal strings (template "none"): prompt encoded with the tokenizer's special tokens (BOS), each response
 *   tokenized on its own + EOS.
 * - a string template: the prompt conversation rendered and masked as in SFT (BOS first), each response its
 *   assistant turn(s) + suffix + EOS: exactly the text the SFT stage trained on.
 * - the tokenizer's chat template (TRL's `apply_chat_template`): prompt = the chat with the generation
 *   prompt; each response = the text the template adds for it (its end-of-turn marker included).
 */
export async function tokenizePreference(
  pair: PreferencePair,
  tokenizer: TrainingTokenizer,
  options: { template?: TrainingTemplate } = {},
): Promise<TokenizedPreference> {
  const template = options.template ?? DEFAULT_TEMPLATE;
  const eos = tokenizer.eosTokenId !== null ? [tokenizer.eosTokenId] : [];
  const enc = (s: string) => tokenizer.encode(s, { addSpecialTokens: false });
  if (isStandard(pair) && template.kind === "none") {
    const p = pair;
    return {
      promptIds: await tokenizer.encode(p.prompt, { addSpecialTokens: true }),
      chosenIds: [...(await enc(p.chosen)), ...eos],
      rejectedIds: [...(await enc(p.rejected)), ...eos],
    };
  }
  needsChat(template);
  const asChat = (x: string | ChatMessage[], role: "user" | "assistant"): ChatMessage[] =>
    typeof x === "string" ? [{ role, content: x }] : x;
  const prompt = asChat(pair.prompt, "user");
  const chosen = asChat(pair.chosen, "assistant");
  const rejected = asChat(pair.rejected, "assistant");
  if (template.kind === "tokenizer") {
    const chat = chatTokenizer(tokenizer);
    const promptText = await chat.applyChatTemplate(prompt, { addGenerationPrompt: true });
    const response = async (r: ChatMessage[]) => {
      const full = await chat.applyChatTemplate([...prompt, ...r], { addGenerationPrompt: false });
      if (!full.startsWith(promptText))
        throw new HippoError(
          "UNSUPPORTED",
          "the chat template applied to prompt + response does not start with the template applied to the prompt",
          { key: "template", expected: "a template that renders turns as prefixes of each other" },
        );
      return enc(full.slice(promptText.length));
    };
    return {
      promptIds: await enc(promptText),
      chosenIds: await response(chosen),
      rejectedIds: await response(rejected),
    };
  }
  const bos = addsBos(tokenizer) ? [tokenizer.bosTokenId as number] : [];
  const split = async (r: ChatMessage[]) => {
    const segments = renderSegments([...prompt, ...r], template as StringTemplate, prompt.length);
    const k = segments.findIndex((s) => s.train);
    const head = await encodeSegments(segments.slice(0, k), tokenizer, { addEos: true });
    const tail = await encodeSegments(segments.slice(k), tokenizer, { addEos: true });
    return { promptIds: [...bos, ...head.inputIds], responseIds: tail.inputIds };
  };
  const c = await split(chosen);
  const r = await split(rejected);
  return { promptIds: c.promptIds, chosenIds: c.responseIds, rejectedIds: r.responseIds };
}

// ---------------------------------------------------------------------------------------------------------
// Whole files.

/** CPT: documents (`text`) -> tokens -> packed blocks of `blockSize` with EOS between documents. */
export async function cptBlocks(
  file: string,
  tokenizer: TrainingTokenizer,
  options: { blockSize: number },
): Promise<TokenizedExample[]> {
  if (tokenizer.eosTokenId === null)
    throw new HippoError("INVALID_CONFIG", "CPT packing needs a tokenizer with an EOS token", {
      key: "tokenizer",
    });
  const packer = createPacker({
    blockSize: options.blockSize,
    eosTokenId: tokenizer.eosTokenId,
    ...(tokenizer.padTokenId !== null ? { padTokenId: tokenizer.padTokenId } : {}),
  });
  const blocks: TokenizedExample[] = [];
  for await (const { record } of readTrainingRecords(file, "cpt"))
    blocks.push(...packer.add(await tokenizer.encode(record.text, { addSpecialTokens: false })));
  blocks.push(...packer.finish());
  return blocks;
}

/** SFT: every record of the file tokenized; records that truncation leaves without a labelled token are dropped. */
export async function sftExamples(
  file: string,
  tokenizer: TrainingTokenizer,
  options: SftTokenizationOptions = {},
): Promise<TokenizedExample[]> {
  const out: TokenizedExample[] = [];
  for await (const { record } of readTrainingRecords(file, "sft")) {
    const ex = await tokenizeSftRecord(record, tokenizer, options);
    if (ex) out.push(ex);
  }
  return out;
}

/** DPO: every pair of the file tokenized. */
export async function dpoPairs(
  file: string,
  tokenizer: TrainingTokenizer,
  options: { template?: TrainingTemplate } = {},
): Promise<TokenizedPreference[]> {
  const out: TokenizedPreference[] = [];
  for await (const { record } of readTrainingRecords(file, "dpo"))
    out.push(await tokenizePreference(record, tokenizer, options));
  return out;
}
