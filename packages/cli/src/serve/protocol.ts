/**
 * The OpenAI request bodies the server accepts, validated with zod, and OpenAI's error shape
 * `{ error: { message, type, param, code } }`. Unknown parameters are ignored, as vLLM does, so clients that
 * send extra fields (lm-evaluation-harness, the openai SDK) work.
 */
import { z } from "zod";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string = "invalid_request_error",
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }

  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const stop = z.union([z.string(), z.array(z.string()).max(4)]).nullish();
const tokenIds = z.array(z.number().int().nonnegative()).min(1);

const common = {
  model: z.string().optional(),
  max_tokens: z.number().int().nonnegative().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  stop,
  seed: z.number().int().nullish(),
  /** Choices per prompt (sampled independently; with a seed, choice j uses seed + j). */
  n: z.number().int().min(1).max(16).nullish(),
  stream: z.boolean().nullish(),
  user: z.string().optional(),
};

export const completionSchema = z.looseObject({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  echo: z.boolean().nullish(),
  logprobs: z.number().int().min(0).max(20).nullish(),
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

/** Validate a body; the first problem becomes a 400 naming the parameter. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body, { reportInput: true });
  if (r.success) return r.data;
  const issue = r.error.issues[0] as z.core.$ZodIssue;
  const param = issue.path.map(String).join(".") || null;
  const input = (issue as { input?: unknown }).input;
  const got =
    input === undefined ? "nothing" : Array.isArray(input) ? "array" : input === null ? "null" : typeof input;
  const message =
    issue.code === "invalid_type"
      ? `'${param}': expected ${issue.expected}, got ${got}`
      : issue.code === "invalid_union"
        ? `'${param}': invalid value (got ${got})`
        : `'${param}': ${issue.message}`;
  return throwApi(new ApiError(400, message, "invalid_request_error", param));
}

function throwApi(e: ApiError): never {
  throw e;
}

/** Normalise `prompt` into a list: strings stay strings, token-id prompts stay id arrays. */
export function promptList(prompt: CompletionRequest["prompt"]): (string | number[])[] {
  if (typeof prompt === "string") return [prompt];
  if (prompt.length > 0 && typeof prompt[0] === "number") return [prompt as number[]];
  return prompt as (string | number[])[];
}
