/**
 * The OpenAI request bodies the server accepts, validated with zod, and OpenAI's error shape
 * `{ error: { message, type, param, code } }`. Unknown parameters are ignored, as vLLM does, so clients that
 * send extra fields (lm-evaluation-harness, the openai SDK) work. Every bad parameter is a 400 that names it
 * and says what was expected (`EXPECTED`), so nothing malformed reaches the model.
 */
import { z } from "zod";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (`Retry-After`, `WWW-Authenticate`). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Most choices per prompt; `--max-choices` bounds prompts x n. */
export const MAX_N = 16;
export const MAX_LOGPROBS = 20;

// An empty stop string would end every completion before it starts (and the model package refuses it).
const stopString = z.string().min(1);
const stop = z.union([stopString, z.array(stopString).max(4)]).nullish();
const tokenIds = z.array(z.number().int().nonnegative()).min(1);

const common = {
  model: z.string().optional(),
  max_tokens: z.number().int().nonnegative().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stop,
  seed: z.number().int().nullish(),
  /** Choices per prompt (sampled independently; with a seed, choice j uses seed + j). */
  n: z.number().int().min(1).max(MAX_N).nullish(),
  stream: z.boolean().nullish(),
  user: z.string().optional(),
};

export const completionSchema = z.looseObject({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  echo: z.boolean().nullish(),
  logprobs: z.number().int().min(0).max(MAX_LOGPROBS).nullish(),
});

export const chatSchema = z.looseObject({
  ...common,
  messages: z
    .array(
      z.looseObject({
        role: z.enum(["system", "user", "assistant", "developer"]),
        content: z.union([z.string(), z.array(z.looseObject({ type: z.literal("text"), text: z.string() }))]),
      }),
    )
    .min(1),
  max_completion_tokens: z.number().int().nonnegative().nullish(),
  logprobs: z.boolean().nullish(),
});

export type CompletionRequest = z.infer<typeof completionSchema>;
export type ChatRequest = z.infer<typeof chatSchema>;

/** What each top-level parameter must be, in the words of the error message. */
const EXPECTED: Record<string, string> = {
  model: "a string",
  max_tokens: "an integer >= 0",
  max_completion_tokens: "an integer >= 0",
  temperature: "a finite number in [0, 2]",
  top_p: "a number in (0, 1]",
  stop: "a non-empty string or a list of at most 4 non-empty strings",
  seed: "an integer (at most 2^53 in magnitude)",
  n: `an integer in [1, ${MAX_N}]`,
  stream: "a boolean",
  echo: "a boolean",
  user: "a string",
  prompt:
    "a string, a non-empty list of strings, a non-empty list of token ids (integers >= 0) or a non-empty list of such lists",
  messages: "a non-empty list of {role, content} messages",
};

/** A value as the error message shows it: numbers as written (Infinity too), strings quoted and cut. */
function shown(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return `a list of ${v.length}`;
  if (typeof v === "string") return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return typeof v;
}

/** Validate a body; the first problem becomes a 400 naming the parameter and what it must be. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown, route: "completions" | "chat"): T {
  const r = schema.safeParse(body, { reportInput: true });
  if (r.success) return r.data;
  const issue = r.error.issues[0] as z.core.$ZodIssue;
  const path = issue.path.map(String);
  const top = path[0] ?? "";
  const param = path.join(".") || null;
  // The top-level value (its whole list for `stop: ["a", ""]`); the issue's own input for nested keys.
  const input =
    path.length === 1 ? (body as Record<string, unknown>)[top] : (issue as { input?: unknown }).input;
  const expected =
    top === "logprobs"
      ? route === "chat"
        ? "a boolean"
        : `an integer in [0, ${MAX_LOGPROBS}]`
      : EXPECTED[top];
  const message =
    path.length === 1 && expected !== undefined
      ? `'${param}': expected ${expected}, got ${shown(input)}`
      : `'${param}': ${issue.message} (got ${shown(input)})`;
  throw new ApiError(400, message, "invalid_request_error", param);
}

/** Normalise `prompt` into a list: strings stay strings, token-id prompts stay id arrays. */
export function promptList(prompt: CompletionRequest["prompt"]): (string | number[])[] {
  if (typeof prompt === "string") return [prompt];
  if (prompt.length > 0 && typeof prompt[0] === "number") return [prompt as number[]];
  return prompt as (string | number[])[];
}
