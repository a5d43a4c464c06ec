/**
 * `evaluate`: tasks -> prompts -> token requests -> a ScoringModel -> per-document scores -> results in
 * lm-evaluation-harness's shape. Requests go to the model one batch of documents at a time, all options of a
 * document together (so a model that shares the context's KV cache across options can do so), and each
 * batch's results are appended to the request cache before the next batch starts.
 *
 * Sharding: a shard {index, count} scores the documents whose position in evaluation order (after the v0.3
 * shuffle and the limit) satisfies position % count == index. Every shard builds all contexts first, so
 * the v0.3 random stream, and with it every prompt, is the same as in one run; `mergeShards` then gives the
 * results of one run.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  HippoError,
  isPlainObject,
  type LogLikelihoodRequest,
  type LogLikelihoodResult,
  type ProgressReporter,
  parseJsonSafe,
  readJsonlObjects,
  type ScoringModel,
  silentProgress,
  writeFileAtomic,
  writeJsonlAtomic,
} from "@hippocrates/core";
import { openRequestCache, type RequestCache, requestKey } from "./cache.js";
import { mean, meanStderr, pooledStderr, scoreDoc } from "./metrics.js";
import { type BuiltDoc, buildContexts } from "./protocol.js";
import { type BosPolicy, type EvalTokenizer, encodeDocRequests } from "./requests.js";
import { defaultRegistry, type Profile, type TaskRegistry } from "./tasks/registry.js";
import type { MetricName, TaskDefinition, TaskGroup } from "./tasks/types.js";
import type { PromptVariant } from "./tasks/variants.js";

export interface Shard {
  index: number;
  count: number;
}

export interface EvaluateOptions {
  model: ScoringModel;
  tokenizer: EvalTokenizer;
  /** Task or group names (resolved in the profile), or task definitions. */
  tasks: readonly (string | TaskDefinition)[];
  numFewshot?: number;
  /** A count, or a fraction when < 1, as the harness's --limit. */
  limit?: number;
  profile?: Profile;
  /** Folder laid out as ../shared/data (benchmarks/...). */
  dataDir: string;
  /** Per-request cache folder; a rerun after an interruption resumes from it. */
  cacheDir?: string;
  shard?: Shard;
  progress?: ProgressReporter;
  /** Folder for results.json and samples_<task>.jsonl (every request's context and continuation). */
  writeOut?: string;
  /** Prompting variant of the fork (v0.3 tasks): medqa_usmle -> medqa_usmle_cot, ... */
  variant?: PromptVariant;
  /** Default: "none" for v0.3, "bos" for current. */
  bos?: BosPolicy;
  /** v0.3 stream seed (42). */
  seed?: number;
  /** Current-profile few-shot seed (1234). */
  fewshotSeed?: number;
  /**
   * Documents per model call (default 1). A model batches the rows of one call together, and float32 results
   * can differ in the last bits with the batch's composition; one document per call makes a sharded run
   * bit-identical to a single one. Raise it for remote endpoints, where a call is an HTTP round trip.
   */
  batchSize?: number;
  registry?: TaskRegistry;
  signal?: AbortSignal;
}

/** One scored document: what `--write-out` dumps, one JSON line each. */
export interface SampleRecord {
  task: string;
  position: number;
  doc_id: string;
  doc_index: number;
  /** The prompt (context) string, few-shot examples included. */
  context: string;
  /** The continuation strings, delimiter included. */
  continuations: string[];
  /** Ids of the few-shot documents. */
  shots: string[];
  gold: number;
  target: string;
  /** [summed log-probability, is_greedy] per continuation. */
  resps: [number, boolean][];
  acc: number;
  acc_norm: number;
  /** Context tokens the model saw (after BOS and truncation), per continuation. */
  context_tokens: number[];
  truncated: boolean;
}

export type TaskMetrics = Record<string, number | string | null>;

export interface ResultsJson {
  results: Record<string, TaskMetrics>;
  groups: Record<string, TaskMetrics>;
  group_subtasks: Record<string, string[]>;
  versions: Record<string, number>;
  "n-shot": Record<string, number>;
  "n-samples": Record<string, { original: number; effective: number; scored: number }>;
  configs: Record<string, Record<string, unknown>>;
  config: Record<string, unknown>;
}

export interface EvalOutput {
  results: ResultsJson;
  samples: Record<string, SampleRecord[]>;
}

function checkShard(shard: Shard | undefined): void {
  if (shard === undefined) return;
  const { index, count } = shard;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) {
    throw new HippoError("INVALID_ARGUMENT", "shard must be {index, count} with 0 <= index < count", {
      key: "shard",
      got: `${index}/${count}`,
    });
  }
}

function resolveTasks(
  opts: EvaluateOptions,
  profile: Profile,
): { tasks: TaskDefinition[]; groups: TaskGroup[] } {
  const registry = opts.registry ?? defaultRegistry;
  const tasks: TaskDefinition[] = [];
  const groups: TaskGroup[] = [];
  for (const t of opts.tasks) {
    if (typeof t !== "string") {
      tasks.push(t);
      continue;
    }
    const r = registry.resolve([t], profile);
    groups.push(...r.groups);
    for (const task of r.tasks) {
      tasks.push(opts.variant ? registry.get(`${task.name}_${opts.variant}`, profile) : task);
    }
  }
  const byName = new Map<string, TaskDefinition>();
  for (const t of tasks) if (!byName.has(t.name)) byName.set(t.name, t);
  return { tasks: [...byName.values()], groups };
}

export async function evaluate(opts: EvaluateOptions): Promise<EvalOutput> {
  const profile = opts.profile ?? "v0.3";
  if (profile !== "v0.3" && profile !== "current")
    throw new HippoError("INVALID_ARGUMENT", "unknown profile", {
      key: "profile",
      expected: "v0.3 or current",
      got: String(profile),
    });
  checkShard(opts.shard);
  const numFewshot = opts.numFewshot ?? 0;
  const bos: BosPolicy = opts.bos ?? (profile === "v0.3" ? "none" : "bos");
  const batchSize = opts.batchSize ?? 1;
  const progress = opts.progress ?? silentProgress;
  const { model, tokenizer } = opts;
  const { tasks, groups } = resolveTasks(opts, profile);
  if (tasks.length === 0) throw new HippoError("INVALID_ARGUMENT", "no tasks to evaluate", { key: "tasks" });
  const cache = opts.cacheDir ? await openRequestCache(opts.cacheDir, model.name) : undefined;

  const samples: Record<string, SampleRecord[]> = {};
  const meta: TaskMeta[] = [];
  for (const task of tasks) {
    const data = await task.load(opts.dataDir);
    const built = buildContexts(task, data, {
      profile,
      numFewshot,
      limit: opts.limit,
      seed: opts.seed,
      fewshotSeed: opts.fewshotSeed,
    });
    const mine = opts.shard
      ? built.filter((b) => b.position % (opts.shard as Shard).count === (opts.shard as Shard).index)
      : built;
    meta.push({
      task,
      original: data.test.length,
      effective: built.length,
      trainDocs: data.train?.length,
      devDocs: data.dev?.length,
    });
    samples[task.name] = await scoreTask(task, mine, {
      model,
      tokenizer,
      bos,
      batchSize,
      progress,
      cache,
      signal: opts.signal,
    });
  }

  const config = {
    model: model.name,
    max_length: model.maxLength,
    num_fewshot: numFewshot,
    limit: opts.limit ?? null,
    profile,
    bos_policy: bos,
    seed: opts.seed ?? 42,
    fewshot_seed: profile === "current" ? (opts.fewshotSeed ?? 1234) : null,
    prompt_variant: opts.variant ?? null,
    shard: opts.shard ?? null,
    batch_size: batchSize,
    truncation: "left: (ctx + cont)[-(max_length + 1):][:-1]",
    harness:
      profile === "v0.3"
        ? "lm-evaluation-harness v0.3 (emrecanacikgoz fork) protocol"
        : "lm-evaluation-harness current defaults",
  };
  const output: EvalOutput = { results: aggregate(meta, groups, samples, config), samples };
  if (opts.writeOut) await writeOutput(opts.writeOut, output);
  return output;
}

interface TaskMeta {
  task: TaskDefinition;
  original: number;
  effective: number;
  trainDocs: number | undefined;
  devDocs: number | undefined;
}

async function scoreTask(
  task: TaskDefinition,
  docs: BuiltDoc[],
  ctx: {
    model: ScoringModel;
    tokenizer: EvalTokenizer;
    bos: BosPolicy;
    batchSize: number;
    progress: ProgressReporter;
    cache: RequestCache | undefined;
    signal: AbortSignal | undefined;
  },
): Promise<SampleRecord[]> {
  const bar = ctx.progress.start({ name: task.name, total: docs.length, unit: "doc" });
  const out: SampleRecord[] = [];
  try {
    for (let start = 0; start < docs.length; start += ctx.batchSize) {
      if (ctx.signal?.aborted)
        throw new HippoError("ABORTED", `evaluation of ${task.name} was interrupted`, {
          cause: ctx.signal.reason,
        });
      const batch = docs.slice(start, start + ctx.batchSize);
      const perDoc = [];
      for (const b of batch)
        perDoc.push(
          await encodeDocRequests(ctx.tokenizer, b.context, b.continuations, {
            bos: ctx.bos,
            maxLength: ctx.model.maxLength,
          }),
        );
      const flat = perDoc.flat();
      const keys = flat.map((r) => requestKey(ctx.model.name, r));
      const results: (LogLikelihoodResult | undefined)[] = keys.map((k) => ctx.cache?.get(k));
      const missing = flat.map((_, i) => i).filter((i) => results[i] === undefined);
      if (missing.length > 0) {
        const reqs: LogLikelihoodRequest[] = missing.map((i) => ({
          context: (flat[i] as LogLikelihoodRequest).context,
          continuation: (flat[i] as LogLikelihoodRequest).continuation,
        }));
        const got = await ctx.model.logLikelihood(reqs, { signal: ctx.signal });
        if (!Array.isArray(got) || got.length !== reqs.length) {
          throw new HippoError(
            "INTERNAL",
            `model ${ctx.model.name} returned ${Array.isArray(got) ? got.length : "no"} results for ${reqs.length} requests`,
          );
        }
        missing.forEach((i, j) => {
          results[i] = got[j];
        });
        await ctx.cache?.put(
          missing.map((i, j) => ({ key: keys[i] as string, result: got[j] as LogLikelihoodResult })),
        );
      }
      let r = 0;
      for (let d = 0; d < batch.length; d++) {
        const b = batch[d] as BuiltDoc;
        const reqs = perDoc[d] as Awaited<ReturnType<typeof encodeDocRequests>>;
        const res = reqs.map(() => results[r++] as LogLikelihoodResult);
        const lls = res.map((x) => x.logprob);
        const s = scoreDoc(lls, b.choices, b.gold);
        out.push({
          task: task.name,
          position: b.position,
          doc_id: b.doc.id,
          doc_index: b.docIndex,
          context: b.context,
          continuations: b.continuations,
          shots: b.shotIds,
          gold: b.gold,
          target: b.continuations[b.gold] as string,
          resps: res.map((x) => [x.logprob, x.isGreedy]),
          acc: s.acc,
          acc_norm: s.acc_norm,
          context_tokens: reqs.map((q) => q.context.length),
          truncated: reqs.some((q) => q.truncated),
        });
      }
      bar.tick(batch.length);
    }
  } finally {
    bar.done();
  }
  return out;
}

function taskMetrics(task: TaskDefinition, rows: SampleRecord[]): TaskMetrics {
  const m: TaskMetrics = { alias: task.name };
  for (const metric of task.metrics) {
    const xs = rows.map((r) => r[metric]);
    m[metric] = xs.length ? mean(xs) : null;
    m[`${metric}_stderr`] = xs.length > 1 ? meanStderr(xs) : null;
  }
  return m;
}

function aggregate(
  meta: TaskMeta[],
  groups: TaskGroup[],
  samples: Record<string, SampleRecord[]>,
  config: Record<string, unknown>,
): ResultsJson {
  const results: ResultsJson = {
    results: {},
    groups: {},
    group_subtasks: {},
    versions: {},
    "n-shot": {},
    "n-samples": {},
    configs: {},
    config,
  };
  for (const { task, original, effective, trainDocs, devDocs } of meta) {
    const rows = samples[task.name] ?? [];
    results.results[task.name] = taskMetrics(task, rows);
    results.versions[task.name] = task.version;
    results["n-shot"][task.name] = config.num_fewshot as number;
    results["n-samples"][task.name] = { original, effective, scored: rows.length };
    results.configs[task.name] = {
      task: task.name,
      version: task.version,
      source: task.source ?? null,
      fewshot_source: task.fewshot,
      num_fewshot: config.num_fewshot,
      target_delimiter: task.targetDelimiter,
      fewshot_delimiter: "\n\n",
      description: task.description ?? "",
      metric_list: task.metrics,
      test_docs: original,
      train_docs: trainDocs ?? null,
      dev_docs: devDocs ?? null,
    };
  }
  for (const g of groups) {
    const members = g.tasks.filter((t) => results.results[t] !== undefined);
    if (members.length === 0) continue;
    const m: TaskMetrics = { alias: g.name };
    for (const metric of ["acc", "acc_norm"] as MetricName[]) {
      if (!members.every((t) => typeof results.results[t]?.[metric] === "number")) continue;
      const sizes = members.map((t) => (samples[t] ?? []).length);
      const values = members.map((t) => results.results[t]?.[metric] as number);
      const total = sizes.reduce((a, b) => a + b, 0);
      m[metric] = values.reduce((a, v, i) => a + v * (sizes[i] as number), 0) / total;
      const errs = members.map((t) => results.results[t]?.[`${metric}_stderr`]);
      m[`${metric}_stderr`] = errs.every((e) => typeof e === "number")
        ? pooledStderr(errs as number[], sizes)
        : null;
    }
    results.groups[g.name] = m;
    results.group_subtasks[g.name] = members;
  }
  return results;
}

/**
 * Combine shard outputs into the output of one run: samples are put back in evaluation order and the
 * metrics recomputed. Shards must come from the same configuration and cover every document exactly once.
 */
export function mergeShards(
  outputs: readonly EvalOutput[],
  tasks?: readonly TaskDefinition[],
  groups?: readonly TaskGroup[],
): EvalOutput {
  if (outputs.length === 0) throw new HippoError("INVALID_ARGUMENT", "no shard outputs to merge");
  const first = outputs[0] as EvalOutput;
  const strip = (c: Record<string, unknown>) => JSON.stringify({ ...c, shard: null });
  for (const [i, o] of outputs.entries()) {
    if (strip(o.results.config) !== strip(first.results.config)) {
      throw new HippoError("INVALID_ARGUMENT", "shards come from different configurations", { row: i });
    }
  }
  const samples: Record<string, SampleRecord[]> = {};
  const meta: TaskMeta[] = [];
  for (const name of Object.keys(first.results.results)) {
    const rows = outputs.flatMap((o) => o.samples[name] ?? []).sort((a, b) => a.position - b.position);
    const n = first.results["n-samples"][name]?.effective ?? rows.length;
    if (rows.length !== n || rows.some((r, i) => r.position !== i)) {
      throw new HippoError("INVALID_ARGUMENT", `shards of ${name} do not cover every document exactly once`, {
        key: name,
        expected: `${n} documents`,
        got: String(rows.length),
      });
    }
    samples[name] = rows;
    const cfg = first.results.configs[name] ?? {};
    const task: TaskDefinition = tasks?.find((t) => t.name === name) ?? {
      name,
      version: first.results.versions[name] ?? 0,
      load: async () => ({ test: [] }),
      docToText: () => "",
      docToChoices: () => [],
      targetDelimiter: String(cfg.target_delimiter ?? " "),
      description: String(cfg.description ?? ""),
      fewshot: (cfg.fewshot_source ?? "test") as TaskDefinition["fewshot"],
      metrics: (cfg.metric_list ?? ["acc"]) as MetricName[],
      source: cfg.source as string | undefined,
    };
    meta.push({
      task,
      original: first.results["n-samples"][name]?.original ?? n,
      effective: n,
      trainDocs: (cfg.train_docs as number | null) ?? undefined,
      devDocs: (cfg.dev_docs as number | null) ?? undefined,
    });
  }
  const groupList =
    groups ?? Object.entries(first.results.group_subtasks).map(([name, t]) => ({ name, tasks: t }));
  return {
    results: aggregate(meta, [...groupList], samples, { ...first.results.config, shard: null }),
    samples,
  };
}

/** results.json plus samples_<task>.jsonl, each written atomically. */
export async function writeOutput(dir: string, output: EvalOutput): Promise<void> {
  for (const [name, rows] of Object.entries(output.samples)) {
    await writeJsonlAtomic(join(dir, `samples_${name}.jsonl`), rows);
  }
  await writeFileAtomic(join(dir, "results.json"), `${JSON.stringify(output.results, null, 2)}\n`);
}

/** Read back what `writeOutput` wrote (a shard's folder, for `mergeShards` in another process). */
export async function readOutput(dir: string): Promise<EvalOutput> {
  const file = join(dir, "results.json");
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    throw new HippoError("NOT_FOUND", `no results.json in ${dir}`, { file, cause: e });
  }
  const results = parseJsonSafe(text, file);
  if (!isPlainObject(results) || !isPlainObject(results.results) || !isPlainObject(results["n-samples"])) {
    throw new HippoError("INVALID_FORMAT", "not an evaluation results.json", {
      file,
      expected: "results, n-samples, config",
    });
  }
  const samples: Record<string, SampleRecord[]> = {};
  for (const name of Object.keys(results.results)) {
    const path = join(dir, `samples_${name}.jsonl`);
    samples[name] = (await readJsonlObjects(path)).map(({ record, line }) => {
      if (typeof record.position !== "number")
        throw new HippoError("INVALID_RECORD", "not a sample record", { file: path, line, key: "position" });
      return { ...record } as unknown as SampleRecord;
    });
  }
  return { results: JSON.parse(text) as ResultsJson, samples };
}
