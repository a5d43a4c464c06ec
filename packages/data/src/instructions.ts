/**
 * Instruction records (core's InstructionRecord: id, source, chat messages) from the formats instruction sets
 * are published in, and the "evaluation instructions" built from the MedQA, MedMCQA and PubMedQA train
 * splits with Meditron-style templates.
 */
import type { ChatMessage, ChatRole, InstructionRecord } from "@hippocrates/core";
import { HippoError } from "@hippocrates/core";
import { z } from "zod";
import type { RecordFormat, RecordLocation } from "./read.js";
import { type BadRecords, readValidRecords } from "./validate.js";

/**
 * - `alpaca`: `{instruction, input?, output, system?}`; the user turn is instruction and input joined by a
 *   newline (as LLaMA-Factory).
 * - `sharegpt`: `{conversations: [{from: "human"|"gpt"|"system"|"user"|"assistant", value}], system?}`.
 * - `chat`: `{messages: [{role: "system"|"user"|"assistant", content}]}`.
 * - `medqa`: MedQA JSONL `{question, options: {A: ..., B: ...}, answer_idx}`.
 * - `medmcqa`: MedMCQA `{question, opa, opb, opc, opd, cop}` (cop 0-based, as the HF dataset) or the
 *   shared-data variant `{question, choices: ["A. ...", ...], answer}` (answer 0-based).
 * - `pubmedqa`: PubMedQA `ori_pqal.json` format `{PMID: {QUESTION, CONTEXTS, final_decision}}` (also the
 *   artificial/unlabeled sets; items without `final_decision` are bad records) or the flattened JSONL
 *   `{question, answer}` where question already holds the abstract.
 */
export type InstructionFormat = "alpaca" | "sharegpt" | "chat" | "medqa" | "medmcqa" | "pubmedqa";

/** How evaluation instructions are worded: Meditron-style (system message, lettered options, "B. text") or
 * the evaluation harness's own prompt (`Question: ...\n(A) a (B) b\nAnswer:` -> ` text`). */
export type EvalInstructionStyle = "meditron" | "harness";

export interface InstructionSource {
  format: InstructionFormat;
  path: string;
  /** Name in the manifest and each record's `source`; default: the file's format. */
  name?: string;
  fileFormat?: RecordFormat;
  style?: EvalInstructionStyle;
}

// Meditron's system messages (epfLLM/meditron evaluation), used for the evaluation instructions.
export const MEDITRON_MCQ_SYSTEM =
  "You are a medical doctor answering real-world medical entrance exam questions. Based on your understanding of basic and clinical science, medical knowledge, and mechanisms underlying health, disease, patient care, and modes of therapy, answer the following multiple-choice question. Select one correct answer from {letters}. Base your answer on the current and standard practices referenced in medical guidelines.";
export const MEDITRON_PUBMEDQA_SYSTEM =
  "As an expert doctor in clinical science and medical knowledge, can you tell me if the following statement is correct? Answer yes, no, or maybe.";

const LETTERS = "ABCDEFGHIJ";

/** Build the chat messages of a multiple-choice training item. */
export function multipleChoiceMessages(
  question: string,
  options: string[],
  gold: number,
  style: EvalInstructionStyle,
): ChatMessage[] {
  const answer = options[gold] as string;
  if (style === "harness") {
    const opts = options.map((o, i) => `(${LETTERS[i]}) ${o}`).join(" ");
    return [
      { role: "user", content: `Question: ${question}\n${opts}\nAnswer:` },
      { role: "assistant", content: answer },
    ];
  }
  const letters = options.length === 1 ? "A" : `A to ${LETTERS[options.length - 1]}`;
  return [
    { role: "system", content: MEDITRON_MCQ_SYSTEM.replace("{letters}", letters) },
    {
      role: "user",
      content: `Question: ${question}\nOptions:\n${options.map((o, i) => `${LETTERS[i]}. ${o}`).join("\n")}`,
    },
    { role: "assistant", content: `${LETTERS[gold]}. ${answer}` },
  ];
}

export function pubmedqaMessages(
  contexts: string,
  question: string,
  decision: string,
  style: EvalInstructionStyle,
): ChatMessage[] {
  if (style === "harness") {
    return [
      { role: "user", content: `Abstract: ${contexts}\nQuestion: ${question}\nAnswer:` },
      { role: "assistant", content: decision },
    ];
  }
  return [
    { role: "system", content: MEDITRON_PUBMEDQA_SYSTEM },
    { role: "user", content: `Context: ${contexts}\n\nQuestion: ${question}` },
    { role: "assistant", content: decision },
  ];
}

const optionalId = z.union([z.string(), z.number()]).optional();
const nonEmpty = z.string().refine((s) => s.trim().length > 0, { message: "must not be empty" });

const alpacaSchema = z.object({
  id: optionalId,
  instruction: z.string(),
  input: z.string().optional().nullable(),
  output: nonEmpty,
  system: z.string().optional().nullable(),
});

const sharegptSchema = z.object({
  id: optionalId,
  system: z.string().optional().nullable(),
  conversations: z
    .array(
      z.object({
        from: z.enum(["human", "user", "gpt", "assistant", "chatgpt", "system"]),
        value: z.string(),
      }),
    )
    .min(2),
});

const chatSchema = z.object({
  id: optionalId,
  messages: z.array(z.object({ role: z.enum(["system", "user", "assistant"]), content: z.string() })).min(2),
});

const medqaSchema = z
  .object({
    id: optionalId,
    realidx: optionalId,
    question: nonEmpty,
    options: z.record(z.string(), z.string()),
    answer_idx: z.string(),
  })
  .refine((r) => Object.hasOwn(r.options, r.answer_idx), {
    message: "answer_idx is not one of the option letters",
    path: ["answer_idx"],
  });

const medmcqaOfficialSchema = z.object({
  id: optionalId,
  question: nonEmpty,
  opa: z.string(),
  opb: z.string(),
  opc: z.string(),
  opd: z.string(),
  cop: z.number().int().min(0).max(3),
});

const medmcqaChoicesSchema = z
  .object({
    id: optionalId,
    question: nonEmpty,
    choices: z.array(z.string()).min(2),
    answer: z.number().int().min(0),
  })
  .refine((r) => r.answer < r.choices.length, {
    message: "answer is out of range of choices",
    path: ["answer"],
  });

const pubmedqaOriSchema = z.object({
  QUESTION: nonEmpty,
  CONTEXTS: z.array(z.string()),
  final_decision: z.enum(["yes", "no", "maybe"]),
});

const pubmedqaFlatSchema = z.object({
  realidx: optionalId,
  question: nonEmpty,
  answer: z.enum(["yes", "no", "maybe"]),
});

function recordId(name: string, loc: RecordLocation, id: unknown): string {
  if (typeof id === "string" || typeof id === "number") return `${name}:${id}`;
  if (loc.key !== undefined) return `${name}:${loc.key}`;
  return `${name}:${loc.line !== undefined ? `L${loc.line}` : `R${loc.row ?? 0}`}`;
}

function mapRole(from: string): ChatRole {
  if (from === "system") return "system";
  if (from === "human" || from === "user") return "user";
  return "assistant";
}

/** Strip a leading "A. " / "(A) " letter prefix from a MedMCQA shared-data choice. */
function stripLetter(choice: string): string {
  return choice.replace(/^\(?[A-J][.)]\s*/u, "");
}

/** Stream the instruction records of one source; bad records go through `bad`. */
export async function* readInstructions(
  source: InstructionSource,
  bad: BadRecords,
): AsyncGenerator<InstructionRecord> {
  const name = source.name ?? source.format;
  const style = source.style ?? "meditron";
  const opts = source.fileFormat ? { format: source.fileFormat } : {};
  // Every case reads the same file with the same policy; only the schema differs.
  const records = <S extends z.ZodType>(schema: S) => readValidRecords(source.path, schema, bad, opts);
  switch (source.format) {
    case "alpaca":
      for await (const { value: r, loc } of records(alpacaSchema)) {
        const messages: ChatMessage[] = [];
        if (r.system) messages.push({ role: "system", content: r.system });
        messages.push({ role: "user", content: r.input ? `${r.instruction}\n${r.input}` : r.instruction });
        messages.push({ role: "assistant", content: r.output });
        yield { id: recordId(name, loc, r.id), source: name, messages };
      }
      return;
    case "sharegpt":
      for await (const { value: r, loc } of records(sharegptSchema)) {
        const messages: ChatMessage[] = [];
        if (r.system) messages.push({ role: "system", content: r.system });
        for (const t of r.conversations) messages.push({ role: mapRole(t.from), content: t.value });
        if (!turnsAreValid(messages, loc, "conversations", bad)) continue;
        yield { id: recordId(name, loc, r.id), source: name, messages };
      }
      return;
    case "chat":
      for await (const { value: r, loc } of records(chatSchema)) {
        const messages = r.messages.map((m) => ({ role: m.role, content: m.content }));
        if (!turnsAreValid(messages, loc, "messages", bad)) continue;
        yield { id: recordId(name, loc, r.id), source: name, messages };
      }
      return;
    case "medqa":
      for await (const { value: r, loc } of records(medqaSchema)) {
        const letters = Object.keys(r.options).sort();
        const options = letters.map((l) => r.options[l] as string);
        yield {
          id: recordId(name, loc, r.id ?? r.realidx),
          source: name,
          messages: multipleChoiceMessages(r.question, options, letters.indexOf(r.answer_idx), style),
        };
      }
      return;
    case "medmcqa":
      for await (const { value: r, loc } of records(z.union([medmcqaOfficialSchema, medmcqaChoicesSchema]))) {
        const [options, gold] =
          "choices" in r ? [r.choices.map(stripLetter), r.answer] : [[r.opa, r.opb, r.opc, r.opd], r.cop];
        yield {
          id: recordId(name, loc, r.id),
          source: name,
          messages: multipleChoiceMessages(r.question, options, gold, style),
        };
      }
      return;
    case "pubmedqa":
      for await (const { value: r, loc } of records(z.union([pubmedqaOriSchema, pubmedqaFlatSchema]))) {
        const messages =
          "CONTEXTS" in r
            ? pubmedqaMessages(r.CONTEXTS.join("\n"), r.QUESTION, r.final_decision, style)
            : pubmedqaFlatMessages(r.question, r.answer, style);
        yield { id: recordId(name, loc, "realidx" in r ? r.realidx : undefined), source: name, messages };
      }
      return;
    default:
      throw new HippoError("INVALID_CONFIG", "unknown instruction format", {
        key: "format",
        expected: "alpaca, sharegpt, chat, medqa, medmcqa or pubmedqa",
        got: String((source as { format: unknown }).format),
      });
  }
}

/** The flattened PubMedQA JSONL keeps the abstract and the question in one `question` string. */
function pubmedqaFlatMessages(
  question: string,
  decision: string,
  style: EvalInstructionStyle,
): ChatMessage[] {
  if (style === "harness")
    return [
      { role: "user", content: `${question}\nAnswer:` },
      { role: "assistant", content: decision },
    ];
  return [
    { role: "system", content: MEDITRON_PUBMEDQA_SYSTEM },
    { role: "user", content: question },
    { role: "assistant", content: decision },
  ];
}

/** A usable conversation has at least one user turn and ends with a non-empty assistant turn. */
/** Report a conversation without a user turn or a final assistant answer as a bad record (file, line, key). */
function turnsAreValid(
  messages: ChatMessage[],
  loc: { file: string; line?: number; row?: number },
  key: string,
  bad: BadRecords,
): boolean {
  const err = checkTurns(messages);
  if (err === undefined) return true;
  bad.handle(
    new HippoError("INVALID_RECORD", err, {
      file: loc.file,
      line: loc.line,
      row: loc.line === undefined ? loc.row : undefined,
      key,
    }),
  );
  return false;
}

function checkTurns(messages: ChatMessage[]): string | undefined {
  if (!messages.some((m) => m.role === "user")) return "conversation has no user turn";
  const last = messages[messages.length - 1];
  if (last?.role !== "assistant" || !last.content.trim())
    return "conversation must end with a non-empty assistant turn";
  return undefined;
}
