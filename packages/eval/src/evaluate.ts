/**
 * `evaluate`: tasks -> prompts -> token requests -> a ScoringModel -> per-document scores -> results in
 * lm-evaluation-harness 0.4's shape (`output.ts`).
 *
 * Batch invariance. Each model call holds exactly one document's requests (all its options, in order), and a
 * document is cached whole. A model batches the rows of a call together, and float32 results change in the
 * last bits with what shares the forward pass (padding to the longest row, the blocking of the kernels'
 * reductions): measured up to 5.7e-6 here, enough to flip tied options of a small-vocabulary model. With one
 * document per call, a document's log-likelihoods depend on that document alone, so a resumed run, a sharded
 * and merged run and a run from a full cache give byte-identical results and samples to one clean run. The
 * `batchSize` documents scored at once are separate calls (parallel HTTP requests for a remote model).
 *
 * Sharding: a shard {index, count} scores the documents whose position in evaluation order (after the v0.3
 * shuffle and the limit) satisfies position % count == index. Every shard builds all contexts first, so the
 * few-shot streams, and with them every prompt, are those of one run; `mergeShards` then gives one run's
 * output.
 */
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  describeValue,
  HippoError,
  type LogLikelihoodResult,
  type ProgressReporter,
  type ScoringModel,
  silentProgress,
} from "@hippocrates/core";
import type { HubOptions } from "@hippocrates/hub";
import { isLogLikelihood, openRequestCache, type RequestCache, requestKey } from "./cache.js";
import { scoreDoc } from "./metrics.js";
import {
  aggregateResults,
  type EvalOutput,
  type GroupMeta,
  type OutputFiles,
  outputFiles,
  type ResultsJson,
  type SampleRecord,
  type TaskMeta,
  taskHashes,
  writeOutput,
} from "./output.js";
import { type BuiltDoc, buildContexts } from "./protocol.js";
import { pyIsoDateId, pyStr, sanitizeModelName } from "./pyformat.js";
import { type BosPolicy, type EvalTokenizer, encodeDocRequests } from "./requests.js";
import { defaultRegistry, type Profile, type TaskRegistry } from "./tasks/registry.js";
import type { TaskData, TaskDefinition, TaskGroup } from "./tasks/types.js";
import type { PromptVariant } from "./tasks/variants.js";

export interface Shard {
  index: number;
  count: number;
}

/** Where a model, adapter or tokenizer came from on the Hugging Face Hub (@hippocrates/hub's `HubSource`). */
export interface HubRevision {
  repo: string;
  /** The revision asked for (`main` by default). */
  revision: string;
  /** The commit sha it resolved to. */
  commit: string;
}

/** The model as lm-evaluation-harness names it in results (`--model`, `--model_args`, `pretrained=`). */
export interface ModelInfo {
  /** `--model`: "hf", "local-completions", ... */
  source: string;
  /** `--model_args` as given. */
  args: string;
  /** The model's name (`pretrained=`, `model=`): the results' `model_name`, sanitized into the folder name. */
  name: string;
  /**
   * Where the weights, the PEFT adapter and the tokenizer came from when named by a Hub id (null: a local
   * folder). The results' `config` records them as the harness's HFLM does (`model_revision`, `model_sha`,
   * `peft_sha`), and all three under `model_sources`.
   */
  hub?: { model?: HubRevision | null; peft?: HubRevision | null; tokenizer?: HubRevision | null };
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
  /**
   * Folder laid out as ../shared/data (benchmarks/...): the built-in tasks read their local copies there. Without
   * it they fetch their Hub datasets (`hub`) into the Hugging Face cache.
   */
  dataDir?: string;
  /** Cache, endpoint, token, offline mode and download progress for Hub datasets (default: the environment). */
  hub?: HubOptions;
  /** Request cache folder; a rerun after an interruption resumes from it. */
  cacheDir?: string;
  shard?: Shard;
  progress?: ProgressReporter;
  /**
   * `--output_path`: write `DIR/<model_name_sanitized>/results_<date>.json` (or `<stem>_<date>.json` for a
   * path ending in `.json`), as lm-evaluation-harness's tracker does.
   */
  outputPath?: string;
  /** `--log_samples`: also write `samples_<task>_<date>.jsonl` beside the results. */
  logSamples?: boolean;
  /** `--write_out`: print the prompt and target of each task's first document. */
  writeOut?: boolean;
  /** Prompting variant of the fork (v0.3 tasks): medqa_usmle -> medqa_usmle_cot, ... */
  variant?: PromptVariant;
  /** Default: "none" for v0.3, "bos" for current. */
  bos?: BosPolicy;
  /** v0.3 stream seed (42). */
  seed?: number;
  /** Current-profile few-shot seed (the harness's `fewshot_random_seed`, 1234). */
  fewshotSeed?: number;
  /**
   * Documents scored at once (default 1), each in its own model call: for a remote endpoint, parallel HTTP
   * requests; a local model runs them one after another.
   */
  batchSize?: number;
  registry?: TaskRegistry;
  signal?: AbortSignal;
  /** How the results name the model (default: source "hippocrates", the ScoringModel's name). */
  modelInfo?: ModelInfo;
  /** Warnings and `writeOut` text (default: standard error). */
  log?: (message: string) => void;
  /** Milliseconds since the epoch, for the results' dates and file names (default `Date.now`). */
  now?: () => number;
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
  const unique = new Map(groups.map((g) => [g.name, g]));
  return { tasks: [...byName.values()], groups: [...unique.values()] };
}

const HARNESS_SCHEMA = "lm-evaluation-harness 0.4.9.1";
const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }
).version;

/** `get_commit_from_path`: the commit of the git checkout at `dir` (HEAD, following a ref), or null. */
function gitCommit(dir: string): string | null {
  try {
    const git = join(dir, ".git");
    const head = readFileSync(join(git, "HEAD"), "utf8").split("\n")[0] ?? "";
    const ref = head.split(" ").at(-1) ?? "";
    return ref.startsWith("refs/") ? readFileSync(join(git, ref), "utf8").trim() : ref.trim() || null;
  } catch {
    return null;
  }
}

export async function evaluate(opts: EvaluateOptions): Promise<EvalOutput & { files?: OutputFiles }> {
  const now = opts.now ?? Date.now;
  const start = now();
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
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new HippoError("INVALID_ARGUMENT", "batch size must be a positive integer", {
      key: "batch_size",
      got: String(batchSize),
    });
  const progress = opts.progress ?? silentProgress;
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const { model, tokenizer } = opts;
  const { tasks, groups } = resolveTasks(opts, profile);
  if (tasks.length === 0) throw new HippoError("INVALID_ARGUMENT", "no tasks to evaluate", { key: "tasks" });
  const info = opts.modelInfo ?? { source: "hippocrates", args: "", name: model.name };
  // A bad output path is an error before any work, not after it.
  if (opts.outputPath) await outputFiles(opts.outputPath, sanitizeModelName(info.name), "check", []);
  const cache = opts.cacheDir ? await openRequestCache(opts.cacheDir, model.name) : undefined;

  const samples: Record<string, SampleRecord[]> = {};
  const metas: TaskMeta[] = [];
  const aliasOf = new Map<string, string>();
  for (const g of groups) for (const [t, a] of Object.entries(g.aliases ?? {})) aliasOf.set(t, a);
  for (const task of tasks) {
    const data = await task.load(opts.dataDir, { hub: opts.hub, numFewshot });
    const built = buildContexts(task, data, {
      profile,
      numFewshot,
      limit: opts.limit,
      seed: opts.seed,
      fewshotSeed: opts.fewshotSeed,
    });
    if (built.length === 0)
      throw new HippoError("INVALID_ARGUMENT", `task ${task.name}: no documents to evaluate`, {
        key: "limit",
        file: data.files?.test,
        expected: "a limit of at least one document",
        got: String(opts.limit),
      });
    const shard = opts.shard;
    const mine = shard ? built.filter((b) => b.position % shard.count === shard.index) : built;
    if (opts.writeOut && built[0]) writeOutFirst(task, built[0], log);
    samples[task.name] = await scoreTask(task, mine, {
      model,
      tokenizer,
      bos,
      batchSize,
      progress,
      cache,
      signal: opts.signal,
    });
    metas.push(taskMeta(task, data, built.length, numFewshot, profile, aliasOf.get(task.name)));
  }
  const groupMetas: GroupMeta[] = groups.map((g) => ({
    name: g.name,
    tasks: g.tasks,
    aggregate: g.aggregate ?? [
      { metric: "acc", weightBySize: true },
      { metric: "acc_norm", weightBySize: true },
    ],
    version: g.version ?? null,
  }));
  if (cache && cache.discarded > 0)
    log(
      `warning: discarded ${cache.discarded} unusable line${cache.discarded === 1 ? "" : "s"} of the request cache ${cache.path} (torn, malformed, conflicting, or not a finite log-likelihood <= 0); their documents were scored again`,
    );

  const sections = aggregateResults(metas, groupMetas, samples);
  const end = now();
  const tokenString = (token: string | null | undefined, id: number | null) => [
    token ?? null,
    String(id ?? "None"),
  ];
  const results: ResultsJson = {
    ...sections,
    config: {
      model: info.source,
      model_args: info.args,
      ...modelRevisions(info),
      batch_size: batchSize,
      batch_sizes: [],
      device: null,
      use_cache: null,
      limit: opts.limit ?? null,
      bootstrap_iters: 100000,
      gen_kwargs: null,
      random_seed: 0,
      numpy_seed: 1234,
      torch_seed: 1234,
      fewshot_seed: profile === "current" ? (opts.fewshotSeed ?? 1234) : null,
      // Ours, beside the harness's keys: the protocol that decides the numbers.
      num_fewshot: numFewshot,
      profile,
      bos_policy: bos,
      seed: profile === "v0.3" ? (opts.seed ?? 42) : null,
      prompt_variant: opts.variant ?? null,
      shard: opts.shard ?? null,
      max_length: model.maxLength,
      truncation: "left: (ctx + cont)[-(max_length + 1):][:-1]",
      scoring_model: model.name,
      harness:
        profile === "v0.3"
          ? "lm-evaluation-harness v0.3 (emrecanacikgoz fork) protocol"
          : `${HARNESS_SCHEMA} protocol`,
      writer: `@hippocrates/eval ${PACKAGE_VERSION} (${HARNESS_SCHEMA} results schema)`,
    },
    git_hash: gitCommit(process.cwd()),
    date: start / 1000,
    pretty_env_info: `Node.js ${process.version} on ${process.platform} ${process.arch}`,
    transformers_version: null,
    lm_eval_version: `@hippocrates/eval ${PACKAGE_VERSION}`,
    upper_git_hash: gitCommit(dirname(process.cwd())),
    tokenizer_pad_token: tokenString(tokenizer.padToken, tokenizer.padTokenId ?? null),
    tokenizer_eos_token: tokenString(tokenizer.eosToken, tokenizer.eosTokenId),
    tokenizer_bos_token: tokenString(tokenizer.bosToken, tokenizer.bosTokenId),
    eot_token_id: tokenizer.eosTokenId,
    max_length: model.maxLength,
    task_hashes: opts.logSamples ? taskHashes(metas, samples) : {},
    model_source: info.source,
    model_name: info.name,
    model_name_sanitized: sanitizeModelName(info.name),
    system_instruction: null,
    system_instruction_sha: null,
    fewshot_as_multiturn: false,
    chat_template: null,
    chat_template_sha: null,
    start_time: start / 1000,
    end_time: end / 1000,
    total_evaluation_time_seconds: pyStr((end - start) / 1000),
  };
  const output: EvalOutput & { files?: OutputFiles } = { results, samples };
  if (opts.outputPath)
    output.files = await writeOutput(opts.outputPath, output, {
      logSamples: opts.logSamples ?? false,
      dateId: pyIsoDateId(now()),
    });
  return output;
}

/**
 * HFLM's `get_model_info` keys (lm_eval/models/huggingface.py, 0.4.9.1): `model_revision` (the revision asked
 * for, "main" by default), `model_sha` (the commit, "" for a local folder, as the harness's failed
 * `HfApi().model_info` gives), `peft_sha` with an adapter; and ours, `model_sources`, with the tokenizer too.
 */
function modelRevisions(info: ModelInfo): Record<string, unknown> {
  if (info.hub === undefined) return {};
  const { model, peft, tokenizer } = info.hub;
  const out: Record<string, unknown> = {
    model_revision: model?.revision ?? "main",
    model_sha: model?.commit ?? "",
  };
  if (peft !== undefined) out.peft_sha = peft?.commit ?? "";
  out.model_sources = { model: model ?? null, peft: peft ?? null, tokenizer: tokenizer ?? null };
  return out;
}

function taskMeta(
  task: TaskDefinition,
  data: TaskData,
  effective: number,
  numFewshot: number,
  profile: Profile,
  alias: string | undefined,
): TaskMeta {
  const config: Record<string, unknown> = {
    task: task.name,
    ...(task.harnessConfig ?? { doc_to_text: "<function>", doc_to_choice: "<function>" }),
    doc_to_target: task.target === "text" ? "{{choices[gold]}}" : "{{gold}}",
    description: task.description ?? "",
    target_delimiter: task.targetDelimiter,
    fewshot_delimiter: "\n\n",
    fewshot_config: { sampler: task.fewshot === "dev_first_k" ? "first_n" : "default" },
    num_fewshot: numFewshot,
    metric_list: task.metrics.map((metric) => ({ metric, aggregation: "mean", higher_is_better: true })),
    output_type: "multiple_choice",
    repeats: 1,
    should_decontaminate: false,
    metadata: {
      version: task.version,
      source: task.source ?? null,
      profile,
      fewshot_source: task.fewshot,
      data_files: data.files ?? {},
      // The Hub dataset each split was read from, with the commit: what makes the numbers reproducible.
      datasets: data.sources ?? {},
      test_docs: data.test.length,
      train_docs: data.train?.length ?? null,
      dev_docs: data.dev?.length ?? null,
    },
  };
  return {
    name: task.name,
    alias: alias ?? task.name,
    version: task.version,
    metrics: task.metrics,
    nShot: numFewshot,
    original: data.test.length,
    effective,
    config,
  };
}

/** `print_writeout`: the first document's prompt and target, as the harness logs them for `--write_out`. */
function writeOutFirst(task: TaskDefinition, b: BuiltDoc, log: (m: string) => void): void {
  log(
    `Task: ${task.name}; document 0; context prompt (starting on next line):\n${b.context}\n(end of prompt on previous line)\ntarget string or answer choice index (starting on next line):\n${targetOf(task, b)}\n(end of target on previous line)`,
  );
  log(`Request: continuations ${JSON.stringify(b.continuations)}`);
}

function targetOf(task: TaskDefinition, b: BuiltDoc): string {
  return task.target === "text" ? (b.choices[b.gold] as string) : String(b.gold);
}

interface ScoreContext {
  model: ScoringModel;
  tokenizer: EvalTokenizer;
  bos: BosPolicy;
  batchSize: number;
  progress: ProgressReporter;
  cache: RequestCache | undefined;
  signal: AbortSignal | undefined;
}

async function scoreTask(task: TaskDefinition, docs: BuiltDoc[], ctx: ScoreContext): Promise<SampleRecord[]> {
  const bar = ctx.progress.start({ name: task.name, total: docs.length, unit: "doc" });
  const out = new Array<SampleRecord>(docs.length);
  let next = 0;
  let failure: unknown;
  // `batchSize` documents in flight, each its own model call; the first error stops new documents, and is
  // thrown once the calls in flight have settled (none is left running behind the caller's back).
  const worker = async () => {
    while (failure === undefined && next < docs.length) {
      const i = next++;
      try {
        if (ctx.signal?.aborted)
          throw new HippoError("ABORTED", `evaluation of ${task.name} was interrupted`, {
            cause: ctx.signal.reason,
          });
        out[i] = await scoreOne(task, docs[i] as BuiltDoc, ctx);
        bar.tick(1);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(ctx.batchSize, docs.length) }, worker));
  } finally {
    bar.done();
    await ctx.cache?.flush();
  }
  if (failure !== undefined) throw failure;
  return out;
}

async function scoreOne(task: TaskDefinition, b: BuiltDoc, ctx: ScoreContext): Promise<SampleRecord> {
  const reqs = await encodeDocRequests(ctx.tokenizer, b.context, b.continuations, {
    bos: ctx.bos,
    maxLength: ctx.model.maxLength,
  });
  const plain = reqs.map((r) => ({ context: r.context, continuation: r.continuation }));
  const key = requestKey(ctx.model.name, plain);
  let res = ctx.cache?.get(key, reqs.length);
  if (res === undefined) {
    const got: unknown = await ctx.model.logLikelihood(plain, { signal: ctx.signal });
    res = checkModelResults(got, plain.length, ctx.model.name, task.name, b.position);
    await ctx.cache?.put(key, res);
  }
  const lls = res.map((x) => x.logprob);
  const s = scoreDoc(lls, b.choices, b.gold);
  const rec: SampleRecord = {
    task: task.name,
    position: b.position,
    doc_key: b.doc.id,
    doc_index: b.docIndex,
    doc: b.doc.raw ?? { question: b.doc.question, options: b.doc.options, gold: b.doc.gold },
    target: targetOf(task, b),
    context: b.context,
    continuations: b.continuations,
    shots: b.shotIds,
    gold: b.gold,
    resps: res.map((x) => [x.logprob, x.isGreedy]),
    acc: s.acc,
    context_tokens: reqs.map((q) => q.context.length),
    truncated: reqs.some((q) => q.truncated),
  };
  if (task.metrics.includes("acc_norm")) rec.acc_norm = s.acc_norm;
  return rec;
}

/** A model's answer is untrusted too: a NaN or a positive "log-likelihood" must never become a score. */
function checkModelResults(
  got: unknown,
  n: number,
  model: string,
  task: string,
  position: number,
): LogLikelihoodResult[] {
  if (!Array.isArray(got) || got.length !== n)
    throw new HippoError(
      "INTERNAL",
      `model ${model} returned ${Array.isArray(got) ? got.length : "no"} results for the ${n} requests of document ${position} of ${task}`,
    );
  return got.map((r, i) => {
    const lp = (r as LogLikelihoodResult | undefined)?.logprob;
    if (!isLogLikelihood(lp) || typeof (r as LogLikelihoodResult).isGreedy !== "boolean")
      throw new HippoError(
        "INTERNAL",
        `model ${model} returned an invalid result for continuation ${i} of document ${position} of ${task}`,
        { expected: "{logprob: a finite number <= 0, isGreedy: boolean}", got: describeValue(r) },
      );
    return { logprob: lp, isGreedy: (r as LogLikelihoodResult).isGreedy };
  });
}
