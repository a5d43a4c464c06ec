/**
 * Chat templates as transformers' `apply_chat_template` renders them: Jinja (here `@huggingface/jinja`, which
 * applies `trim_blocks` and `lstrip_blocks` like transformers does) with `messages`, `add_generation_prompt`,
 * `raise_exception` (a global of the library) and the special tokens (`bos_token`, `eos_token`, ...) in scope.
 */
import type { ChatMessage } from "@hippocrates/core";
import { describeValue, HippoError, isPlainObject } from "@hippocrates/core";
import { Template } from "@huggingface/jinja";
import type { NamedTemplate } from "./config.js";

export interface ChatTemplateOptions {
  /** Append the header that opens an assistant turn (HF `add_generation_prompt`). Default false. */
  addGenerationPrompt?: boolean;
  /** Extra variables for the template (HF passes its extra kwargs the same way). */
  extra?: Record<string, unknown>;
  /** Pick one of several named templates (a list-valued `chat_template`); default "default". */
  templateName?: string;
}

/** Picks the template to use from a string or a list of named templates, as transformers does. */
export function selectTemplate(
  templates: string | NamedTemplate[] | null,
  name: string | undefined,
  source: string | null,
): string {
  if (templates === null) {
    throw new HippoError("NOT_FOUND", "this tokenizer has no chat template", {
      file: source ?? undefined,
      expected:
        "a chat_template in tokenizer_config.json, a chat_template.jinja file, or options.chatTemplate",
    });
  }
  if (typeof templates === "string") {
    if (name !== undefined && name !== "default") {
      throw new HippoError("NOT_FOUND", `no chat template named "${name}"`, {
        file: source ?? undefined,
        key: "chat_template",
        expected: "default",
        got: name,
      });
    }
    return templates;
  }
  const wanted = name ?? "default";
  const found = templates.find((t) => t.name === wanted);
  if (found === undefined) {
    throw new HippoError("NOT_FOUND", `no chat template named "${wanted}"`, {
      file: source ?? undefined,
      key: "chat_template",
      expected: templates.map((t) => t.name).join(", ") || "a named template",
      got: wanted,
    });
  }
  return found.template;
}

function checkMessages(messages: unknown): asserts messages is ChatMessage[] {
  if (!Array.isArray(messages)) {
    throw new HippoError("INVALID_ARGUMENT", "messages must be an array", {
      key: "messages",
      expected: "array of {role, content}",
      got: describeValue(messages),
    });
  }
  messages.forEach((m, row) => {
    if (!isPlainObject(m) || typeof m.role !== "string" || typeof m.content !== "string") {
      throw new HippoError("INVALID_ARGUMENT", "each message must be {role: string, content: string}", {
        key: `messages[${row}]`,
        expected: "{role: string, content: string}",
        got: describeValue(m),
      });
    }
  });
}

export function renderChat(
  template: string,
  messages: ChatMessage[],
  specialTokens: Record<string, unknown>,
  options: ChatTemplateOptions = {},
): string {
  checkMessages(messages);
  let compiled: Template;
  try {
    compiled = new Template(template);
  } catch (e) {
    throw new HippoError("INVALID_CONFIG", `chat template does not parse: ${(e as Error).message}`, {
      key: "chat_template",
      cause: e,
    });
  }
  const context: Record<string, unknown> = {
    ...specialTokens,
    ...options.extra,
    messages: messages.map((m) => ({ ...m })),
    add_generation_prompt: options.addGenerationPrompt ?? false,
    // `raise_exception(msg)` is a global of @huggingface/jinja already: it throws an Error with `msg`.
  };
  try {
    return compiled.render(context);
  } catch (e) {
    // Mostly the template's raise_exception on messages it does not accept (roles out of order, unsupported
    // role); the library throws plain Errors, so a runtime bug of the template lands here as well.
    throw new HippoError(
      "INVALID_ARGUMENT",
      `chat template failed on these messages: ${(e as Error).message}`,
      {
        key: "chat_template",
        cause: e,
      },
    );
  }
}
