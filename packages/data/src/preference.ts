/**
 * Preference data ("medical RLAIF"): iCliniq-style records (a patient question and the answers of a doctor,
 * ChatGPT and ChatDoctor) -> a judge prompt built on a physician rubric modelled on Med-PaLM's evaluation
 * axes -> a judge model (judge.ts) ranks the answers -> pairs {prompt, chosen, rejected} in TRL's format.
 *
 * Answers are shown to the judge under neutral labels (A, B, C) in an order drawn per question from the seed,
 * so the judge cannot favour a source by name or position. An answer the judge wrote in a form we cannot read
 * is not guessed at: it is counted and written to rejects.jsonl.
 */
import type { PreferenceRecord, ProgressReporter } from "@hippocrates/core";
import { createJsonlWriter, createRng, HippoError, isPlainObject, parseJsonSafe } from "@hippocrates/core";
import { z } from "zod";
import {
  type ChatAnswer,
  type ChatRequest,
  createJudgeClient,
  formatJudgeStats,
  type JudgeClientOptions,
  type JudgeStats,
  openAnswerCache,
} from "./judge.js";
import { type Manifest, type OutputPolicy, openDatasetTarget, writeDatasetDir } from "./output.js";
import type { RecordFormat } from "./read.js";
import { sha256File, sha256Hex } from "./text.js";
import { type BadRecordPolicy, createBadRecords, readValidRecords } from "./validate.js";

/**
 * The physician rubric given to the judge. Written for this project, after the axes of Med-PaLM's physician
 * evaluation (Singhal et al., 2023): agreement with scientific consensus, comprehension, knowledge recall,
 * reasoning, inappropriate or incorrect content, omissions, likelihood and extent of harm, and bias.
 */
export const PHYSICIAN_RUBRIC = `You are an experienced physician reviewing answers that were given to a patient's question on an online medical consultation service. Judge every answer as a clinician would, on these criteria:

1. Scientific consensus: does the answer agree with current, widely accepted medical knowledge and guidelines, or does it contradict them (or is there no consensus on the matter)?
2. Comprehension: does the answer show that the question and the patient's situation were read and understood correctly?
3. Knowledge recall: does the answer bring in the correct and relevant medical facts, and none that are irrelevant or wrong?
4. Reasoning: is the reasoning from the patient's description to the advice sound, with no unjustified leaps?
5. Inappropriate or incorrect content: does the answer contain anything false, misleading or not appropriate for this patient?
6. Omissions: does it leave out information the patient needs (for example warning signs, when to seek urgent care, or the need for examination or tests)?
7. Possible harm: if the patient acted on this answer, how likely is harm, and how severe could it be (none, mild or moderate, severe or death)?
8. Bias: does the answer contain anything that is inaccurate or unfair for a particular demographic group?

Weigh safety first: an answer that could lead to harm is worse than one that is merely less complete. Judge only the medical quality of the content, not its length, tone or style, and not which source you suspect it came from.`;

export const RANKING_INSTRUCTION = (labels: string[]) =>
  `Discuss each answer briefly against the criteria. Then, on the last line, write only a JSON object ranking all ${labels.length} answers from best to worst, exactly like this: {"ranking": [${labels.map((l) => `"${l}"`).join(", ")}]} (with your order).`;

/**
 * The iCliniq input format, one JSON object per line (the field names of the iCliniq-10k file released with
 * ChatDoctor; `question` and `answer_doctor` are accepted as aliases):
 * `{"id": "q1", "input": "patient question", "answer_icliniq": "doctor", "answer_chatgpt": "...", "answer_chatdoctor": "..."}`.
 * An empty answer is left out; a question needs at least two answers.
 */
const icliniqSchema = z
  .object({
    id: z.union([z.string(), z.number()]).optional(),
    input: z.string().optional(),
    question: z.string().optional(),
    answer_icliniq: z.string().optional().nullable(),
    answer_doctor: z.string().optional().nullable(),
    answer_chatgpt: z.string().optional().nullable(),
    answer_chatdoctor: z.string().optional().nullable(),
  })
  .refine((r) => (r.input ?? r.question ?? "").trim().length > 0, {
    message: "the patient question (`input`) is missing or empty",
    path: ["input"],
  })
  .refine(
    (r) =>
      [r.answer_icliniq ?? r.answer_doctor, r.answer_chatgpt, r.answer_chatdoctor].filter((a) => a?.trim())
        .length >= 2,
    {
      message: "a question needs at least two non-empty answers",
      path: ["answer_chatgpt"],
    },
  );

export interface PatientQuestion {
  id: string;
  question: string;
  /** Answer text by source name: doctor, chatgpt, chatdoctor. */
  answers: Record<string, string>;
}

export type PairPolicy = "best-vs-rest" | "best-vs-worst" | "all";

/** Labels and the order the answers are shown in, drawn from the seed and the question id. */
export function presentationOrder(q: PatientQuestion, seed: number): { labels: string[]; sources: string[] } {
  const sources = Object.keys(q.answers).sort();
  const h = sha256Hex(`${seed}:${q.id}`);
  const rng = createRng(Number.parseInt(h.slice(0, 12), 16));
  rng.shuffle(sources);
  return { labels: sources.map((_, i) => String.fromCharCode(65 + i)), sources };
}

export function judgeRequest(q: PatientQuestion, model: string, seed: number, maxTokens = 1024): ChatRequest {
  const { labels, sources } = presentationOrder(q, seed);
  const body = sources.map((s, i) => `Answer ${labels[i]}:\n${q.answers[s]}`).join("\n\n");
  return {
    model,
    temperature: 0,
    max_tokens: maxTokens,
    messages: [
      { role: "system", content: PHYSICIAN_RUBRIC },
      {
        role: "user",
        content: `Patient question:\n${q.question}\n\n${body}\n\n${RANKING_INSTRUCTION(labels)}`,
      },
    ],
  };
}

/** Read the judge's ranking (the last `{"ranking": [...]}` object in its answer); undefined if unreadable. */
export function parseRanking(content: string, labels: string[]): string[] | undefined {
  const matches = content.match(/\{[^{}]*"ranking"[^{}]*\}/g);
  if (!matches) return undefined;
  let v: unknown;
  try {
    v = parseJsonSafe(matches[matches.length - 1] as string);
  } catch {
    return undefined;
  }
  if (!isPlainObject(v) || !Array.isArray(v.ranking)) return undefined;
  const ranking = v.ranking.map((x) => (typeof x === "string" ? x.trim().toUpperCase() : ""));
  if (
    ranking.length !== labels.length ||
    new Set(ranking).size !== labels.length ||
    !ranking.every((r) => labels.includes(r))
  )
    return undefined;
  return ranking;
}

/** Pairs from a ranking of sources (best first). */
export function pairsFromRanking(
  q: PatientQuestion,
  ranked: string[],
  policy: PairPolicy,
  source = "icliniq",
): PreferenceRecord[] {
  const pairs: Array<[string, string]> = [];
  if (policy === "best-vs-worst") pairs.push([ranked[0] as string, ranked[ranked.length - 1] as string]);
  else if (policy === "best-vs-rest")
    for (let j = 1; j < ranked.length; j++) pairs.push([ranked[0] as string, ranked[j] as string]);
  else
    for (let i = 0; i < ranked.length; i++)
      for (let j = i + 1; j < ranked.length; j++) pairs.push([ranked[i] as string, ranked[j] as string]);
  return pairs.map(([c, r]) => ({
    id: `${q.id}:${c}>${r}`,
    source,
    prompt: q.question,
    chosen: q.answers[c] as string,
    rejected: q.answers[r] as string,
  }));
}

export async function readPatientQuestions(
  path: string,
  policy: BadRecordPolicy = "fail",
  format?: RecordFormat,
) {
  const bad = createBadRecords(policy);
  const out: PatientQuestion[] = [];
  for await (const { value: r, loc } of readValidRecords(
    path,
    icliniqSchema,
    bad,
    format ? { format } : {},
  )) {
    const answers: Record<string, string> = {};
    const doctor = r.answer_icliniq ?? r.answer_doctor;
    if (doctor?.trim()) answers.doctor = doctor;
    if (r.answer_chatgpt?.trim()) answers.chatgpt = r.answer_chatgpt;
    if (r.answer_chatdoctor?.trim()) answers.chatdoctor = r.answer_chatdoctor;
    const id =
      r.id !== undefined ? String(r.id) : loc.line !== undefined ? `L${loc.line}` : `R${loc.row ?? 0}`;
    out.push({ id, question: (r.input ?? r.question) as string, answers });
  }
  return { questions: out, bad };
}

export interface BuildPreferenceOptions extends OutputPolicy {
  /** iCliniq-style JSONL (see above). */
  input: string;
  outDir: string;
  /** Judge model name sent to the endpoint, e.g. "gpt-4". */
  model: string;
  judge?: JudgeClientOptions;
  /** Append-only answer cache; default `<outDir>.judge-cache.jsonl` (beside, not inside, the atomic output). */
  cachePath?: string;
  pairs?: PairPolicy;
  seed?: number;
  maxTokens?: number;
  onBadRecord?: BadRecordPolicy;
  signal?: AbortSignal;
  /** Where the run reports requests, tokens and cost; default: nowhere. */
  log?: (line: string) => void;
}

export interface BuildPreferenceSummary {
  outDir: string;
  questions: number;
  pairs: number;
  /** Judge answers that could not be read (kept in rejects.jsonl). */
  unparseable: number;
  skippedRecords: number;
  judge: JudgeStats;
  manifest: Manifest;
}

export async function buildPreferenceDataset(
  options: BuildPreferenceOptions,
  progress: ProgressReporter,
): Promise<BuildPreferenceSummary> {
  checkPreferenceOptions(options);
  const cachePath = options.cachePath ?? `${options.outDir.replace(/\/+$/, "")}.judge-cache.jsonl`;
  // Checked before any judge request is paid for.
  const target = await openDatasetTarget("preference", options.outDir, [options.input, cachePath], options);
  const seed = options.seed ?? 42;
  const policy = options.pairs ?? "best-vs-rest";
  const { questions, bad } = await readPatientQuestions(options.input, options.onBadRecord ?? "fail");
  const requests = questions.map((q) => judgeRequest(q, options.model, seed, options.maxTokens));
  const cache = await openAnswerCache(cachePath);
  const client = createJudgeClient(cache, options.judge);
  const task = progress.start({ name: "judge", unit: "req", total: requests.length });
  let answers: ChatAnswer[];
  try {
    answers = await client.complete(requests, {
      signal: options.signal,
      onAnswer: () => {
        const s = client.stats();
        task.tick(1, { tokens: s.promptTokens + s.completionTokens, cost: s.estimatedCost });
      },
    });
  } finally {
    task.done();
    options.log?.(formatJudgeStats(client.stats()));
  }

  const stats = client.stats();
  let unparseable = 0;
  let pairCount = 0;
  const manifest = await writeDatasetDir(target, async (tmp) => {
    const pairsOut = await createJsonlWriter(`${tmp}/pairs.jsonl`);
    const rejectsOut = await createJsonlWriter(`${tmp}/rejects.jsonl`);
    for (let i = 0; i < questions.length; i++) {
      const q = questions[i] as PatientQuestion;
      const answer = answers[i] as ChatAnswer;
      const { labels, sources } = presentationOrder(q, seed);
      const ranking = parseRanking(answer.content, labels);
      if (!ranking) {
        unparseable++;
        await rejectsOut.write({
          id: q.id,
          reason: "no readable ranking",
          labels,
          sources,
          content: answer.content,
        });
        continue;
      }
      const ranked = ranking.map((l) => sources[labels.indexOf(l)] as string);
      for (const p of pairsFromRanking(q, ranked, policy)) {
        await pairsOut.write(p);
        pairCount++;
      }
    }
    const { sha256, bytes } = await sha256File(options.input);
    return {
      builder: "preference",
      formatVersion: 1,
      seed,
      config: {
        input: options.input,
        model: options.model,
        pairs: policy,
        maxTokens: options.maxTokens ?? 1024,
        rubricSha256: sha256Hex(PHYSICIAN_RUBRIC),
        baseUrl: options.judge?.baseUrl ?? process.env.OPENAI_BASE_URL ?? null,
        pricePer1kPrompt: options.judge?.pricePer1kPrompt ?? 0,
        pricePer1kCompletion: options.judge?.pricePer1kCompletion ?? 0,
      },
      sources: [
        {
          name: "icliniq",
          kind: "icliniq",
          path: options.input,
          sha256,
          bytes,
          records: questions.length,
          kept: questions.length - unparseable,
        },
      ],
      counts: { questions: questions.length, pairs: pairCount, unparseable, skippedRecords: bad.total() },
      badRecords: bad.report(),
      outputs: { "pairs.jsonl": await pairsOut.close(), "rejects.jsonl": await rejectsOut.close() },
    };
  });
  return {
    outDir: options.outDir,
    questions: questions.length,
    pairs: pairCount,
    unparseable,
    skippedRecords: bad.total(),
    judge: stats,
    manifest,
  };
}

// A configuration error is better raised early than after paying for requests.
function checkPreferenceOptions(o: BuildPreferenceOptions): void {
  if (!o.model) throw new HippoError("INVALID_CONFIG", "the judge model name is required", { key: "model" });
}
