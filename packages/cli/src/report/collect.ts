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

export interface CurvePoint {
  step: number;
  loss?: number;
  eval_loss?: number;
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
  curves: { stage: string; points: CurvePoint[] }[];
  evals: EvalRow[];
  samples: SampleRow[];
  /**
   * The models, tokenizers and datasets read from the Hugging Face Hub, each at its commit: the run's base
   * models (manifest `sources`) and each eval stage's datasets (its recorded sources, else its results file's
   * `configs[task].metadata.datasets`). `stage` is empty for the run's own.
   */
  sources: (ResolvedSource & { stage: string })[];
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

/** The per-sample rows of the samples files beside a results file, at most `max`. */
export async function readEvalSamples(
  resultsFile: string,
  tasks: string[],
  row: { stage: string; label: string },
  max: number,
): Promise<SampleRow[]> {
  const out: SampleRow[] = [];
  for (const { task, file } of await sampleFiles(resultsFile, tasks)) {
    for (const r of await readJsonl(file)) {
      if (out.length >= max) return out;
      out.push(sampleRow(r, task, row.stage, row.label));
    }
  }
  return out;
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
    curves: [],
    evals: [],
    samples: [],
    sources: (manifest.sources ?? []).filter(isSource).map((x) => ({ ...x, stage: "" })),
  };
  const bases = new Set(manifest.stages.map((_, i) => branchOf(manifest.stages, i).base));
  for (const [i, stage] of manifest.stages.entries()) {
    const files = stage.output?.files ?? {};
    const metricsFile = resolveFile(stage, files.metrics);
    if (metricsFile && existsSync(metricsFile)) {
      const points: CurvePoint[] = [];
      for (const r of await readJsonl(metricsFile)) {
        const step = num(r.step);
        if (step === undefined) continue;
        const p: CurvePoint = { step };
        const loss = num(r.loss);
        const evalLoss = num(r.eval_loss);
        if (loss !== undefined) p.loss = loss;
        if (evalLoss !== undefined) p.eval_loss = evalLoss;
        if (loss !== undefined || evalLoss !== undefined) points.push(p);
      }
      data.curves.push({ stage: stage.id, points });
    }
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
      data.samples.push(
        ...(await readEvalSamples(
          resultsFile,
          Object.keys(tasks),
          { stage: stage.id, label: display },
          maxSamples - data.samples.length,
        )),
      );
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
  return data;
}
