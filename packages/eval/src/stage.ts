/**
 * The pipeline's `eval` stage: the input model (an HF folder or an adapter chain, loaded with
 * @hippocrates/model's `loadArtifact`) scored on the benchmark tasks through `asScoringModel`, results in the
 * stage's folder and the accuracies as the stage's metrics. It is a `PipelineStage` like a user's own.
 *
 * @hippocrates/model (and with it TensorFlow.js) is imported only when the stage runs, so evaluating an HTTP
 * model with `evaluate` never loads it. The caller initialises the TensorFlow.js backend before `run`.
 */
import { existsSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { extname, join, resolve } from "node:path";
import {
  HippoError,
  isHippoError,
  isPlainObject,
  type PipelineStage,
  type PipelineStageOutput,
  type ResolvedSource,
  type StageCheckContext,
  type StageContext,
  unknownKeysError,
  unknownNameMessage,
} from "@hippocrates/core";
import { z } from "zod";
import { evaluate, type ModelInfo } from "./evaluate.js";
import type { ResultsJson } from "./output.js";
import { defaultRegistry, PROFILES, type Profile } from "./tasks/registry.js";
import { loadTaskFile } from "./tasks/taskfile.js";
import type { TaskDefinition } from "./tasks/types.js";

export interface EvalSettings {
  /** Task or group names of the profile, or task-definition files (JSON, relative to the pipeline file). */
  tasks: string[];
  /** Few-shot examples per prompt (lm-evaluation-harness's --num_fewshot; default 0). */
  num_fewshot?: number;
  /** Documents per task: a count, or a fraction when < 1 (the harness's --limit). */
  limit?: number;
  /** Prompt protocol: "v0.3" (the paper's harness fork, the default) or "current" (lm-evaluation-harness 0.4). */
  profile?: Profile;
  /**
   * Folder with local copies of the benchmark files (laid out as ../shared/data), relative to the pipeline file.
   * Without it the built-in tasks read their Hub datasets (at the revisions their task files pin) through the
   * Hugging Face cache.
   */
  data_dir?: string;
  /** Documents per model call, and rows per forward pass of the local model. */
  batch_size?: number;
  /** Row label in the report (default: the training stages before it, e.g. "+CPT+SFT"). */
  label?: string;
  /**
   * Write each task's per-sample results (`samples_<task>_<date>.jsonl`) beside the results file, as the
   * harness's `--log_samples` (default true). `write_out`, this setting's earlier name, is accepted too.
   */
  log_samples: boolean;
}

const fields = {
  tasks: z.array(z.string().min(1)).min(1, "name at least one task"),
  num_fewshot: z.number().int().nonnegative(),
  limit: z
    .number()
    .positive()
    .refine((n) => n < 1 || Number.isInteger(n), "a count (integer) or a fraction below 1"),
  profile: z.enum(PROFILES),
  data_dir: z.string().min(1),
  batch_size: z.number().int().positive(),
  label: z.string().min(1),
  log_samples: z.boolean(),
  /** The earlier name of log_samples. */
  write_out: z.boolean(),
};

const complete: z.ZodType<EvalSettings> = z.strictObject({
  tasks: fields.tasks,
  num_fewshot: fields.num_fewshot.optional(),
  limit: fields.limit.optional(),
  profile: fields.profile.optional(),
  data_dir: fields.data_dir.optional(),
  batch_size: fields.batch_size.optional(),
  label: fields.label.optional(),
  log_samples: fields.log_samples.default(true),
});

/** The eval stage's settings schema: the pipeline entry laid over `defaults`. */
export function evalSettingsSchema(defaults: Partial<EvalSettings> = {}): z.ZodType<EvalSettings> {
  return z
    .strictObject(fields, { error: unknownKeysError(Object.keys(fields)) })
    .partial()
    .refine((given) => given.write_out === undefined || given.log_samples === undefined, {
      message: "write_out is the earlier name of log_samples: give one of them",
      path: ["write_out"],
    })
    .transform(({ write_out, ...given }): unknown => ({
      ...defaults,
      ...(write_out === undefined ? {} : { log_samples: write_out }),
      ...given,
    }))
    .pipe(complete);
}

/** A task setting that names a task-definition file rather than a registered task. */
const isTaskFile = (task: string, baseDir: string) =>
  extname(task) === ".json" || existsSync(resolve(baseDir, task));

async function resolveTask(
  task: string,
  i: number,
  s: EvalSettings,
  baseDir: string,
): Promise<string | TaskDefinition> {
  const key = `tasks[${i}]`;
  if (isTaskFile(task, baseDir)) {
    try {
      return await loadTaskFile(resolve(baseDir, task));
    } catch (e) {
      if (!isHippoError(e)) throw e;
      throw new HippoError(e.code, `${key}: ${e.reason}`, {
        ...e.location,
        expected: e.expected,
        got: e.got,
      });
    }
  }
  const profile = s.profile ?? "v0.3";
  try {
    defaultRegistry.resolve([task], profile);
  } catch (e) {
    if (!isHippoError(e, "NOT_FOUND")) throw e;
    throw new HippoError(
      "NOT_FOUND",
      `${unknownNameMessage("task", task, defaultRegistry.names(profile))} in profile ${profile}`,
      {
        key,
        expected: "a task or group name of the profile, or a task file (.json)",
      },
    );
  }
  return task;
}

/**
 * The Hub datasets a results file says its tasks read (`configs[task].metadata.datasets`, one per split), as the
 * run manifest and the report record them. Read as untrusted JSON: entries of another shape are left out.
 */
export function datasetSources(results: unknown): ResolvedSource[] {
  const out: ResolvedSource[] = [];
  const configs = isPlainObject(results) && isPlainObject(results.configs) ? results.configs : {};
  for (const [task, config] of Object.entries(configs)) {
    const meta = isPlainObject(config) && isPlainObject(config.metadata) ? config.metadata : {};
    const datasets = isPlainObject(meta.datasets) ? meta.datasets : {};
    for (const [split, d] of Object.entries(datasets)) {
      if (!isPlainObject(d)) continue;
      const { repo, revision, commit, config: name, split: repoSplit } = d;
      if (typeof repo !== "string" || typeof revision !== "string" || typeof commit !== "string") continue;
      out.push({
        role: `dataset ${task}/${split}`,
        type: "dataset",
        repo,
        revision,
        commit,
        config: typeof name === "string" ? name : "default",
        split: typeof repoSplit === "string" ? repoSplit : split,
      });
    }
  }
  return out;
}

/**
 * The stage's numbers for the report: `<task>/acc` and `<task>/acc_norm` of every task, and `average/acc`, the
 * unweighted mean of the tasks' accuracies. The one place that knows the results' metric keys.
 */
export function metricsFromResults(results: ResultsJson): Record<string, number> {
  const metrics: Record<string, number> = {};
  const accs: number[] = [];
  for (const [task, m] of Object.entries(results.results)) {
    if (results.group_subtasks[task]?.length) continue; // a group's row, not a task's
    for (const k of ["acc", "acc_norm"]) {
      const v = m[`${k},none`];
      if (typeof v === "number") metrics[`${task}/${k}`] = v;
    }
    const acc = m["acc,none"];
    if (typeof acc === "number") accs.push(acc);
  }
  if (accs.length) metrics["average/acc"] = accs.reduce((a, b) => a + b, 0) / accs.length;
  return metrics;
}

async function check(s: EvalSettings, ctx: StageCheckContext): Promise<void> {
  for (const [i, task] of s.tasks.entries()) await resolveTask(task, i, s, ctx.baseDir);
  if (s.data_dir !== undefined) {
    const dir = resolve(ctx.baseDir, s.data_dir);
    if (!existsSync(dir) || !statSync(dir).isDirectory())
      throw new HippoError("NOT_FOUND", "data_dir is not a folder", {
        key: "data_dir",
        file: dir,
        expected: "a folder with the benchmark files (as ../shared/data)",
      });
  }
}

async function run(
  s: EvalSettings,
  input: { model: PipelineStageOutput["model"] },
  ctx: StageContext,
): Promise<PipelineStageOutput> {
  const [{ loadTokenizer }, { asScoringModel, loadArtifact }] = await Promise.all([
    import("@hippocrates/tokenizer"),
    import("@hippocrates/model"),
  ]);
  const tokenizer = await loadTokenizer(ctx.tokenizer);
  const tasks = await Promise.all(s.tasks.map((t, i) => resolveTask(t, i, s, ctx.baseDir)));
  const model = await loadArtifact(input.model);
  let output: Awaited<ReturnType<typeof evaluate>>;
  try {
    // Requests are cached while the stage runs, so a stopped evaluation resumes; the cache goes once it is
    // done, so a later run of a retrained model never reads this model's answers.
    const cacheDir = join(ctx.outputDir, "cache");
    output = await evaluate({
      model: asScoringModel(model, { name: input.model.path, batchSize: s.batch_size }),
      tokenizer,
      tasks,
      numFewshot: s.num_fewshot,
      limit: s.limit,
      profile: s.profile,
      // A data folder when the pipeline names one; else the tasks' Hub datasets, never the working directory.
      dataDir: s.data_dir !== undefined ? resolve(ctx.baseDir, s.data_dir) : undefined,
      hub: { progress: ctx.progress, signal: ctx.signal },
      modelInfo: { source: "hippocrates", args: "", name: input.model.path, hub: hubOf(input.model) },
      cacheDir,
      outputPath: ctx.outputDir,
      logSamples: s.log_samples,
      progress: ctx.progress,
      signal: ctx.signal,
      batchSize: s.batch_size,
    });
    await rm(cacheDir, { recursive: true, force: true });
  } finally {
    model.dispose();
  }
  return {
    model: input.model,
    metrics: metricsFromResults(output.results),
    files: { results: output.files?.results ?? ctx.outputDir },
    sources: datasetSources(output.results),
  };
}

/**
 * The Hub revisions of an artifact for the results' `config` (`model_sha`, `peft_sha`): a Hub model is an
 * `hf-model` whose `revision` the pipeline set to the resolved commit; a local folder has none.
 */
function hubOf(model: PipelineStageOutput["model"]): ModelInfo["hub"] {
  let base = model;
  while (base.kind === "peft-adapter") base = base.base;
  const commit = (a: PipelineStageOutput["model"]) =>
    a.revision !== undefined && /^[0-9a-f]{40}$/.test(a.revision)
      ? { repo: a.path, revision: a.revision, commit: a.revision }
      : null;
  return model.kind === "hf-model" ? { model: commit(model) } : { model: commit(base), peft: commit(model) };
}

/** `evalStage({ tasks: ["medqa_usmle"], profile: "current" })`: defaults a pipeline entry's own settings override. */
export function evalStage(defaults: Partial<EvalSettings> = {}): PipelineStage<EvalSettings> {
  const parsed = z
    .strictObject(fields, { error: unknownKeysError(Object.keys(fields)) })
    .partial()
    .safeParse(defaults);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new HippoError("INVALID_CONFIG", `evalStage defaults: ${issue?.message}`, {
      key: issue?.path.map(String).join(".") || undefined,
    });
  }
  return {
    kind: "eval",
    settings: evalSettingsSchema(parsed.data),
    check,
    run: (input, ctx) => run(input.config, input, ctx),
  };
}
