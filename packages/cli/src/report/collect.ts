/**
 * Gather what a report shows from a run folder: the manifest, each training stage's metrics JSONL (loss
 * curves), each eval stage's results and per-sample JSONL. Everything is read as untrusted JSON.
 *
 * An eval's row is named by the training stages on its branch: walking its `from` chain back to the base
 * model, the kinds cpt, sft and dpo give "+CPT", "+SFT", "+CPT+SFT", ... (the paper's rows), or "base" when
 * there are none. With several base models the row also names its base (`mistral +SFT`).
 */
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { basename, dirname, isAbsolute, join } from "node:path";
import type { ResolvedSource } from "@hippocrates/core";
import { HippoError, isPlainObject, readJsonFile, readJsonlObjects } from "@hippocrates/core";
import { PUBLISHED_STAGES } from "@hippocrates/eval";
import { type RunManifest, readManifest, type StageRecord } from "../pipeline/manifest.js";

/**
 * The training logs the report charts, under the names TRL's trainers log them (`log_history` in
 * trainer_state.json, one object per line in metrics.jsonl): DPOTrainer's `rewards/*` are its implicit rewards
 * beta * (log pi(y|x) - log pi_ref(y|x)) averaged over the step's pairs (trl 0.12+, `dpo_trainer.py`).
 */
export const CURVE_METRICS = [
  "loss",
  "eval_loss",
  "learning_rate",
  "rewards/chosen",
  "rewards/rejected",
  "rewards/margins",
  "rewards/accuracies",
] as const;
export type CurveMetric = (typeof CURVE_METRICS)[number];

/** One optimizer step's logged values (a train entry and an eval entry of the same step merged). */
export type CurvePoint = { step: number } & Partial<Record<CurveMetric, number>>;

/** A base model of the run, described from its config.json and weights (what the report says it is). */
export interface ModelInfo {
  /** `base`, or a name under the pipeline's `models:`. */
  name: string;
  /** The folder (or Hub id) the run took it from. */
  path: string;
  /** config.json's `model_type` ("llama", "mistral"), when the folder has one. */
  modelType?: string;
  hiddenSize?: number;
  layers?: number;
  vocabSize?: number;
  /** Parameter count from the safetensors headers (exact, tied weights once). */
  parameters?: number;
}

/** What marks a run as the miniature: its knowledge base, when the report can find it. */
export interface MiniatureInfo {
  /** Invented diseases in the knowledge base (data/knowledge-base.json beside the pipeline). */
  diseases?: number;
}

export interface TaskScore {
  acc: number;
  acc_norm?: number;
  stderr?: number;
  n?: number;
}

export interface EvalRow {
  stage: string;
  /** The base model at the root of the eval's branch (`base`, or a name under `models:`). */
  model: string;
  /** "base", "+CPT", "+CPT+SFT", ... (the training stages before this eval), or the stage's own label. */
  label: string;
  tasks: Record<string, TaskScore>;
  /** Unweighted mean acc over the tasks, as the paper's average column. */
  average: number;
}

export interface SampleRow {
  stage: string;
  label: string;
  task: string;
  id: string;
  context: string;
  options: string[];
  logprobs: number[];
  gold: number;
  pred: number;
}

export interface ReportData {
  name: string;
  status: string;
  createdAt: string;
  machine: RunManifest["machine"];
  backend: unknown;
  packages: Record<string, string>;
  stages: {
    id: string;
    kind: string;
    status: string;
    seconds: number | null;
    metrics: Record<string, number>;
  }[];
  /** The base models the run starts from. */
  models: ModelInfo[];
  /** Set when the run is `hippo miniature`'s (its name or its eval tasks say so): its numbers are a demo. */
  miniature: MiniatureInfo | undefined;
  curves: { stage: string; kind: string; points: CurvePoint[] }[];
  evals: EvalRow[];
  /** The samples embedded for the browser (at most `maxSamples`, in stage order). */
  samples: SampleRow[];
  /**
   * The models, tokenizers and datasets read from the Hugging Face Hub, each at its commit: the run's base
   * models (manifest `sources`) and each eval stage's datasets (its recorded sources, else its results file's
   * `configs[task].metadata.datasets`). `stage` is empty for the run's own.
   */
  sources: (ResolvedSource & { stage: string })[];
  /** How many samples the eval stages logged in all (more than `samples.length` when capped). */
  samplesTotal: number;
}

const TRAIN_LABEL: Record<string, string> = { cpt: "CPT", sft: "SFT", dpo: "DPO" };

/** The stage a record takes its model from (manifests before `from:` existed: the previous stage). */
function inputRecord(stages: StageRecord[], index: number): StageRecord | undefined {
  const s = stages[index];
  if (s?.from === undefined) return index > 0 ? stages[index - 1] : undefined;
  return stages.find((r) => r.id === s.from);
}

/** The training stages on a stage's branch, from the base model up to (not including) the stage. */
export function branchOf(stages: StageRecord[], index: number): { base: string; chain: StageRecord[] } {
  const chain: StageRecord[] = [];
  let i = index;
  let base = stages[index]?.base ?? "base";
  for (let guard = 0; guard < stages.length; guard++) {
    const up = inputRecord(stages, i);
    if (!up) break;
    chain.unshift(up);
    base = up.base ?? base;
    i = stages.indexOf(up);
  }
  return { base, chain };
}

/** The label of an eval stage from the training stages on its branch: "base", "+CPT", "+CPT+SFT", ... */
export function stageLabel(stages: StageRecord[], index: number): string {
  const parts: string[] = [];
  for (const s of branchOf(stages, index).chain) {
    const t = TRAIN_LABEL[s.kind];
    if (t && !parts.includes(t)) parts.push(t);
  }
  return parts.length ? `+${parts.join("+")}` : "base";
}

function resolveFile(stage: StageRecord, file: string | undefined): string | undefined {
  if (!file) return undefined;
  return isAbsolute(file) ? file : join(stage.outputDir, file);
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/**
 * The results file of an eval stage: the recorded file, or (a folder, or a recorded `results.json` that an
 * lm-evaluation-harness 0.4 layout replaced) the newest `results_<date>.json` in that folder or its model
 * folder. Undefined when there is none (a stage that did not finish).
 */
async function findEvalResults(recorded: string): Promise<string | undefined> {
  const { findResultsFile } = await import("@hippocrates/eval");
  const target = existsSync(recorded) ? recorded : dirname(recorded);
  if (!existsSync(target)) return undefined;
  try {
    return await findResultsFile(target);
  } catch (e) {
    if (e instanceof HippoError && e.code === "NOT_FOUND") return undefined;
    throw e;
  }
}

/**
 * Per-task scores of a results file: lm-evaluation-harness 0.4 keys (`"acc,none"`, `"acc_stderr,none"`, a
 * stderr may be "N/A"), or the earlier `acc` keys of older run folders. Group rows are left out (the paper's
 * table is per task).
 */
export function taskScores(results: unknown): Record<string, TaskScore> {
  const tasks: Record<string, TaskScore> = {};
  if (!isPlainObject(results) || !isPlainObject(results.results)) return tasks;
  const subtasks = isPlainObject(results.group_subtasks) ? results.group_subtasks : {};
  const nSamples = isPlainObject(results["n-samples"]) ? results["n-samples"] : {};
  for (const [task, m] of Object.entries(results.results)) {
    if (!isPlainObject(m)) continue;
    if (Array.isArray(subtasks[task]) && (subtasks[task] as unknown[]).length > 0) continue;
    const acc = num(m["acc,none"]) ?? num(m.acc);
    if (acc === undefined) continue;
    const score: TaskScore = { acc };
    const norm = num(m["acc_norm,none"]) ?? num(m.acc_norm);
    const se = num(m["acc_stderr,none"]) ?? num(m.acc_stderr);
    if (norm !== undefined) score.acc_norm = norm;
    if (se !== undefined) score.stderr = se;
    const ns = nSamples[task];
    if (isPlainObject(ns) && num(ns.effective) !== undefined) score.n = num(ns.effective) as number;
    tasks[task] = score;
  }
  return tasks;
}

/** Samples files beside a results file: `samples_<task>_<date>.jsonl` (0.4), or `samples_<task>.jsonl`. */
async function sampleFiles(resultsFile: string, tasks: string[]): Promise<{ task: string; file: string }[]> {
  const dir = dirname(resultsFile);
  const name = basename(resultsFile);
  const date = name.startsWith("results_")
    ? name.slice(name.lastIndexOf("_") + 1, -".json".length)
    : undefined;
  const names = new Set(await readdir(dir));
  const out: { task: string; file: string }[] = [];
  for (const task of [...tasks].sort()) {
    const candidates = [date ? `samples_${task}_${date}.jsonl` : undefined, `samples_${task}.jsonl`];
    const found = candidates.find((c) => c !== undefined && names.has(c));
    if (found) out.push({ task, file: join(dir, found) });
  }
  return out;
}

/** One row of a samples file (lm-evaluation-harness 0.4's, or the earlier own format), read leniently. */
function sampleRow(r: Record<string, unknown>, task: string, stage: string, label: string): SampleRow {
  const args = isPlainObject(r.arguments) ? Object.values(r.arguments).filter(isPlainObject) : [];
  const hippo = isPlainObject(r.hippo) ? r.hippo : {};
  const pairs = Array.isArray(r.filtered_resps) ? r.filtered_resps : Array.isArray(r.resps) ? r.resps : [];
  const logprobs = pairs.map((x) => (Array.isArray(x) ? Number(x[0]) : Number(x)));
  const options = args.length
    ? args.map((a) => String(a.arg_1 ?? ""))
    : Array.isArray(r.continuations)
      ? r.continuations.map(String)
      : [];
  const gold = num(hippo.gold) ?? num(r.gold) ?? -1;
  return {
    stage,
    label,
    task: String(hippo.task ?? r.task ?? task),
    id: String(hippo.doc_key ?? r.doc_id ?? ""),
    context: String(args[0]?.arg_0 ?? r.context ?? ""),
    options,
    logprobs,
    gold,
    pred: logprobs.length ? logprobs.indexOf(Math.max(...logprobs)) : -1,
  };
}

/** The per-task scores of an eval results file (see `taskScores`). */
export async function readEvalResults(file: string): Promise<Record<string, TaskScore>> {
  return taskScores(await readJsonFile(file));
}

async function readJsonl(file: string): Promise<Record<string, unknown>[]> {
  return (await readJsonlObjects(file)).map((r) => r.record);
}

/** The per-sample rows of the samples files beside a results file (at most `max`), and how many there are. */
export async function readEvalSamples(
  resultsFile: string,
  tasks: string[],
  row: { stage: string; label: string },
  max: number,
): Promise<{ rows: SampleRow[]; total: number }> {
  const rows: SampleRow[] = [];
  let total = 0;
  for (const { task, file } of await sampleFiles(resultsFile, tasks)) {
    for (const r of await readJsonl(file)) {
      total += 1;
      if (rows.length < max) rows.push(sampleRow(r, task, row.stage, row.label));
    }
  }
  return { rows, total };
}

/**
 * A training stage's logged steps: its metrics.jsonl, or (a stage folder without one) the `log_history` of its
 * trainer_state.json. Entries of the same step are merged (the trainer logs the eval loss as its own entry,
 * and a resumed stage may log a step again: the later value wins).
 */
async function readCurve(
  files: Record<string, string>,
  stage: StageRecord,
): Promise<CurvePoint[] | undefined> {
  const metricsFile = resolveFile(stage, files.metrics);
  const stateFile = resolveFile(stage, files.trainer_state);
  let entries: unknown[];
  if (metricsFile && existsSync(metricsFile)) entries = await readJsonl(metricsFile);
  else if (stateFile && existsSync(stateFile)) {
    const state = await readJsonFile(stateFile);
    entries = isPlainObject(state) && Array.isArray(state.log_history) ? state.log_history : [];
  } else return undefined;
  const byStep = new Map<number, CurvePoint>();
  for (const r of entries) {
    if (!isPlainObject(r)) continue;
    const step = num(r.step);
    if (step === undefined) continue;
    const point = byStep.get(step) ?? { step };
    let any = false;
    for (const key of CURVE_METRICS) {
      const v = num(r[key]);
      if (v === undefined) continue;
      point[key] = v;
      any = true;
    }
    if (any) byStep.set(step, point);
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** config.json and the safetensors headers of a local model folder; only the path when there is none. */
async function describeModel(name: string, path: string): Promise<ModelInfo> {
  const info: ModelInfo = { name, path };
  try {
    const config = await readJsonFile(join(path, "config.json"));
    if (isPlainObject(config)) {
      if (typeof config.model_type === "string") info.modelType = config.model_type;
      const hidden = num(config.hidden_size);
      const layers = num(config.num_hidden_layers);
      const vocab = num(config.vocab_size);
      if (hidden !== undefined) info.hiddenSize = hidden;
      if (layers !== undefined) info.layers = layers;
      if (vocab !== undefined) info.vocabSize = vocab;
    }
    const { openCheckpoint } = await import("@hippocrates/safetensors");
    const ckpt = await openCheckpoint(path);
    try {
      let n = 0;
      for (const t of ckpt.tensors.values()) n += t.shape.reduce((a, b) => a * b, 1);
      info.parameters = n;
    } finally {
      await ckpt.close();
    }
  } catch {
    // Not a local HF folder (a Hub id, a folder that has moved since the run): the report names the path only.
  }
  return info;
}

/** The base models: each branch root's input, as the first stage taking it recorded it. */
async function baseModels(stages: StageRecord[]): Promise<ModelInfo[]> {
  const seen = new Map<string, string>();
  for (const [i, s] of stages.entries()) {
    const { base, chain } = branchOf(stages, i);
    if (chain.length === 0 && s.input && !seen.has(base)) seen.set(base, s.input.path);
  }
  return Promise.all([...seen].map(([name, path]) => describeModel(name, path)));
}

/** The miniature's knowledge base: `hippo miniature` writes data/knowledge-base.json beside pipeline.yaml. */
async function miniatureInfo(manifest: RunManifest, tasks: string[]): Promise<MiniatureInfo | undefined> {
  const byName = /^miniature\b/.test(manifest.name);
  const byTask = tasks.some((t) => t.startsWith("miniature_"));
  if (!byName && !byTask) return undefined;
  const info: MiniatureInfo = {};
  const kb = join(dirname(manifest.configFile), "data", "knowledge-base.json");
  if (existsSync(kb)) {
    try {
      const parsed = await readJsonFile(kb);
      if (isPlainObject(parsed) && Array.isArray(parsed.diseases)) info.diseases = parsed.diseases.length;
    } catch {
      // A damaged knowledge base file does not stop the report; the caveat then gives no count.
    }
  }
  return info;
}

/** A source record of a manifest (untrusted JSON): the fields a report line shows, as strings. */
function isSource(x: unknown): x is ResolvedSource {
  return (
    isPlainObject(x) &&
    typeof x.role === "string" &&
    typeof x.repo === "string" &&
    typeof x.revision === "string" &&
    typeof x.commit === "string"
  );
}

export async function collectReport(
  runDir: string,
  options: { maxSamples?: number } = {},
): Promise<ReportData> {
  const manifest = await readManifest(runDir);
  if (!manifest)
    throw new HippoError("NOT_FOUND", "no manifest.json: not a hippo run folder", {
      file: join(runDir, "manifest.json"),
    });
  const maxSamples = options.maxSamples ?? 5000;
  const data: ReportData = {
    name: manifest.name,
    status: manifest.status,
    createdAt: manifest.createdAt,
    machine: manifest.machine,
    backend: manifest.backend,
    packages: manifest.packages,
    stages: manifest.stages.map((s) => ({
      id: s.id,
      kind: s.kind,
      status: s.status,
      seconds: s.seconds ?? null,
      metrics: s.output?.metrics ?? {},
    })),
    models: await baseModels(manifest.stages),
    miniature: undefined,
    curves: [],
    evals: [],
    samples: [],
    sources: (manifest.sources ?? []).filter(isSource).map((x) => ({ ...x, stage: "" })),
    samplesTotal: 0,
  };
  const bases = new Set(manifest.stages.map((_, i) => branchOf(manifest.stages, i).base));
  for (const [i, stage] of manifest.stages.entries()) {
    const files = stage.output?.files ?? {};
    const points = await readCurve(files, stage);
    if (points) data.curves.push({ stage: stage.id, kind: stage.kind, points });
    const recorded = resolveFile(stage, files.results);
    const resultsFile = stage.kind === "eval" && recorded ? await findEvalResults(recorded) : undefined;
    if (stage.kind === "eval" && resultsFile) {
      const configured = (manifest.config as { stages?: { label?: unknown }[] } | undefined)?.stages?.[i]
        ?.label;
      const label = typeof configured === "string" ? configured : stageLabel(manifest.stages, i);
      const model = branchOf(manifest.stages, i).base;
      const display = bases.size > 1 ? `${model} ${label}` : label;
      const results = await readJsonFile(resultsFile);
      const tasks = taskScores(results);
      const { datasetSources } = await import("@hippocrates/eval");
      const recordedSources = (stage.output?.sources ?? []).filter(isSource);
      for (const x of recordedSources.length ? recordedSources : datasetSources(results))
        data.sources.push({ ...x, stage: stage.id });
      const accs = Object.values(tasks).map((t) => t.acc);
      data.evals.push({
        stage: stage.id,
        model,
        label,
        tasks,
        average: accs.length ? accs.reduce((a, b) => a + b, 0) / accs.length : Number.NaN,
      });
      const logged = await readEvalSamples(
        resultsFile,
        Object.keys(tasks),
        { stage: stage.id, label: display },
        maxSamples - data.samples.length,
      );
      data.samples.push(...logged.rows);
      data.samplesTotal += logged.total;
    }
  }
  // The paper's row order (base, +CPT, +SFT, +CPT+SFT, +CPT+SFT+DPO) within each base model; other labels
  // after them, in run order.
  const models = [...bases];
  const rank = (e: EvalRow) => {
    const p = PUBLISHED_STAGES.findIndex((s) => s.label === e.label);
    return models.indexOf(e.model) * 1000 + (p >= 0 ? p : 100 + data.evals.indexOf(e));
  };
  data.evals = [...data.evals].sort((a, b) => rank(a) - rank(b));
  data.miniature = await miniatureInfo(
    manifest,
    data.evals.flatMap((e) => Object.keys(e.tasks)),
  );
  return data;
}
