/**
 * SFT tokenization: a chat record rendered through a prompt template into a TokenizedExample whose labels
 * are IGNORE_INDEX on every prompt token (system, user turns, template text) and equal to the input ids on
 * the assistant's response tokens and the EOS after each response.
 *
 * The pieces are tokenized one by one (prompt piece, response piece, ...) and concatenated, as LLaMA-Factory
 * does, so the boundary between masked and labelled tokens is exact. Note that with SentencePiece tokenizers
 * such as Llama-2's a piece starts with the prepended space the normalizer adds, as it does there.
 */
import type { ChatMessage, InstructionRecord, TextTokenizer, TokenizedExample } from "@hippocrates/core";
import { HippoError, IGNORE_INDEX } from "@hippocrates/core";

/** Strings with `{content}` standing for the message text. */
export interface StringTemplate {
  kind: "string";
  name: string;
  system: string;
  user: string;
  /** Text after each response, inside the labelled span (e.g. ChatML's `<|im_end|>`). */
  assistantSuffix: string;
  /** Text before each user turn after the first (masked). */
  separator: string;
}

/** The authors' code base default template (LLaMA-Factory "default"): `Human: {prompt}\nAssistant: `. */
export const DEFAULT_TEMPLATE: StringTemplate = {
  kind: "string",
  name: "default",
  system: "{content}\n",
  user: "Human: {content}\nAssistant: ",
  assistantSuffix: "",
  separator: "\n",
};

/** ChatML, the layout Meditron's fine-tuning used (roles as plain text when the vocabulary lacks the markers). */
export const CHATML_TEMPLATE: StringTemplate = {
  kind: "string",
  name: "chatml",
  system: "<|im_start|>system\n{content}<|im_end|>\n",
  user: "<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
  assistantSuffix: "<|im_end|>",
  separator: "\n",
};

/** A tokenizer that renders its own chat template (HF `apply_chat_template`). */
export interface ChatTemplateTokenizer extends TextTokenizer {
  applyChatTemplate(
    messages: ChatMessage[],
    options?: { addGenerationPrompt?: boolean },
  ): string | Promise<string>;
}

export type PromptTemplate = StringTemplate | { kind: "tokenizer" };

export function templateByName(name: string): PromptTemplate {
  if (name === "default") return DEFAULT_TEMPLATE;
  if (name === "chatml") return CHATML_TEMPLATE;
  if (name === "tokenizer") return { kind: "tokenizer" };
  throw new HippoError("INVALID_CONFIG", "unknown prompt template", {
    key: "template",
    expected: "default, chatml or tokenizer",
    got: JSON.stringify(name),
  });
}

export interface SftTokenizeOptions {
  template?: PromptTemplate;
  /** Prepend BOS (default true: Llama/Mistral training sequences start with `<s>`). Ignored for `tokenizer` templates, whose text carries it. */
  addBos?: boolean;
  /** Append EOS after every response (default true; the model must learn to stop). */
  addEos?: boolean;
  /** Truncate to this many tokens (from the right). */
  maxLength?: number;
  /**
   * Index of the first message whose assistant turns are trained on (default 0: every assistant turn). A
   * conversational prompt-completion record trains on its completion only: trainFrom = the prompt's length.
   */
  trainFrom?: number;
}

/** A piece of text and whether its tokens are trained on. */
export interface Segment {
  text: string;
  train: boolean;
  /** An assistant turn: EOS follows it (labelled when the turn is). */
  endOfTurn?: boolean;
}

const fill = (template: string, content: string) => template.split("{content}").join(content);

/**
 * Split a chat into masked (prompt) and labelled (response) text segments under a string template. Assistant
 * turns before message `trainFrom` are context (a conversational prompt-completion record's prompt): rendered
 * the same way, masked.
 */
export function renderSegments(messages: ChatMessage[], template: StringTemplate, trainFrom = 0): Segment[] {
  const segments: Segment[] = [];
  let prompt = "";
  let userTurns = 0;
  messages.forEach((m, i) => {
    if (m.role === "system") prompt += fill(template.system, m.content);
    else if (m.role === "user") {
      if (userTurns > 0) prompt += template.separator;
      prompt += fill(template.user, m.content);
      userTurns++;
    } else {
      if (prompt) segments.push({ text: prompt, train: false });
      prompt = "";
      segments.push({ text: m.content + template.assistantSuffix, train: i >= trainFrom, endOfTurn: true });
    }
  });
  return segments;
}

/**
 * Render the chat with the tokenizer's template and find each assistant response as a character span: the
 * text the template adds for that assistant turn (the chat through the turn minus the prefix with the
 * generation prompt), its end-of-turn marker included.
 */
async function renderWithTokenizerTemplate(
  messages: ChatMessage[],
  tokenizer: ChatTemplateTokenizer,
  trainFrom: number,
): Promise<{ text: string; spans: Array<[number, number]> }> {
  const spans: Array<[number, number]> = [];
  let text = "";
  for (let i = 0; i < messages.length; i++) {
    if ((messages[i] as ChatMessage).role !== "assistant") continue;
    const prefix = await tokenizer.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
    const full = await tokenizer.applyChatTemplate(messages.slice(0, i + 1), { addGenerationPrompt: false });
    if (!prefix.startsWith(text) || !full.startsWith(prefix)) {
      throw new HippoError(
        "UNSUPPORTED",
        "the tokenizer's chat template does not render turns as prefixes of each other; use a string template",
      );
    }
    if (i >= trainFrom) spans.push([prefix.length, full.length]);
    text = full;
  }
  return { text, spans };
}

/** A tokenizer that also reports each token's character span (`@hippocrates/tokenizer` does). */
type OffsetTokenizer = TextTokenizer & {
  encodeWithOffsets(
    text: string,
    options?: { addSpecialTokens?: boolean },
  ): Promise<{ ids: number[]; offsets: [number, number][] }>;
};

/** Tokenize one instruction record for SFT. Returns undefined when truncation leaves no labelled token. */
export async function tokenizeInstruction(
  record: InstructionRecord,
  tokenizer: TextTokenizer,
  options: SftTokenizeOptions = {},
): Promise<TokenizedExample | undefined> {
  const template = options.template ?? DEFAULT_TEMPLATE;
  const inputIds: number[] = [];
  const labels: number[] = [];
  let segments: Segment[];
  if (template.kind === "tokenizer") {
    if (typeof (tokenizer as Partial<ChatTemplateTokenizer>).applyChatTemplate !== "function") {
      throw new HippoError("UNSUPPORTED", 'template "tokenizer" needs a tokenizer with applyChatTemplate');
    }
    const { text, spans } = await renderWithTokenizerTemplate(
      record.messages,
      tokenizer as ChatTemplateTokenizer,
      options.trainFrom ?? 0,
    );
    if (typeof (tokenizer as Partial<OffsetTokenizer>).encodeWithOffsets === "function") {
      // Tokenize the whole rendered chat once (exactly what the model sees at inference) and label the tokens
      // that start inside a response span.
      const enc = await (tokenizer as OffsetTokenizer).encodeWithOffsets(text, { addSpecialTokens: false });
      enc.ids.forEach((id, k) => {
        const start = (enc.offsets[k] as [number, number])[0];
        inputIds.push(id);
        labels.push(spans.some(([a, b]) => start >= a && start < b) ? id : IGNORE_INDEX);
      });
      return finish(inputIds, labels, options.maxLength);
    }
    segments = [];
    let at = 0;
    for (const [a, b] of spans) {
      if (a > at) segments.push({ text: text.slice(at, a), train: false });
      segments.push({ text: text.slice(a, b), train: true });
      at = b;
    }
  } else {
    segments = renderSegments(record.messages, template, options.trainFrom ?? 0);
    if ((options.addBos ?? true) && tokenizer.bosTokenId !== null) {
      inputIds.push(tokenizer.bosTokenId);
      labels.push(IGNORE_INDEX);
    }
  }
  const encoded = await encodeSegments(segments, tokenizer, {
    addEos: (options.addEos ?? true) && template.kind !== "tokenizer",
  });
  inputIds.push(...encoded.inputIds);
  labels.push(...encoded.labels);
  return finish(inputIds, labels, options.maxLength);
}

/**
 * Tokenize segments one by one and concatenate them (LLaMA-Factory's way: the boundary between masked and
 * labelled tokens is exact), with EOS after each assistant turn when `addEos` (labelled when the turn is).
 */
export async function encodeSegments(
  segments: readonly Segment[],
  tokenizer: TextTokenizer,
  options: { addEos: boolean },
): Promise<TokenizedExample> {
  const inputIds: number[] = [];
  const labels: number[] = [];
  for (const seg of segments) {
    const ids = await tokenizer.encode(seg.text, { addSpecialTokens: false });
    for (const id of ids) {
      inputIds.push(id);
      labels.push(seg.train ? id : IGNORE_INDEX);
    }
    if (seg.endOfTurn && options.addEos && tokenizer.eosTokenId !== null) {
      inputIds.push(tokenizer.eosTokenId);
      labels.push(seg.train ? tokenizer.eosTokenId : IGNORE_INDEX);
    }
  }
  return { inputIds, labels };
}

function finish(
  inputIds: number[],
  labels: number[],
  maxLength: number | undefined,
): TokenizedExample | undefined {
  if (maxLength !== undefined && inputIds.length > maxLength) {
    inputIds.length = maxLength;
    labels.length = maxLength;
  }
  if (!labels.some((l) => l !== IGNORE_INDEX)) return undefined;
  return { inputIds, labels };
}
