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
import { dirname, isAbsolute, join } from "node:path";
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

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/**
 * The per-task scores of an eval results file. The one place the report reads eval results: it takes
 * lm-evaluation-harness 0.4's metric keys (`"acc,none"`, `"acc_stderr,none"`) and the older plain ones
 * (`acc`, `acc_stderr`), and `n-samples[task].effective`.
 */
export async function readEvalResults(file: string): Promise<Record<string, TaskScore>> {
  const results = await readJsonFile(file);
  const tasks: Record<string, TaskScore> = {};
  if (!isPlainObject(results) || !isPlainObject(results.results)) return tasks;
  const nSamples = isPlainObject(results["n-samples"]) ? results["n-samples"] : {};
  for (const [task, m] of Object.entries(results.results)) {
    if (!isPlainObject(m)) continue;
    const metric = (name: string) => num(m[`${name},none`]) ?? num(m[name]);
    const acc = metric("acc");
    if (acc === undefined) continue;
    const score: TaskScore = { acc };
    const norm = metric("acc_norm");
    const se = metric("acc_stderr");
    if (norm !== undefined) score.acc_norm = norm;
    if (se !== undefined) score.stderr = se;
    const ns = nSamples[task];
    if (isPlainObject(ns) && num(ns.effective) !== undefined) score.n = num(ns.effective) as number;
    tasks[task] = score;
  }
  return tasks;
}

async function readJsonl(file: string): Promise<Record<string, unknown>[]> {
  return (await readJsonlObjects(file)).map((r) => r.record);
}

/** The per-sample rows of an eval stage's `samples_<task>*.jsonl` files in `dir`, at most `max`. */
export async function readEvalSamples(
  dir: string,
  row: { stage: string; label: string },
  max: number,
): Promise<SampleRow[]> {
  const out: SampleRow[] = [];
  for (const f of (await readdir(dir))
    .filter((n) => n.startsWith("samples_") && n.endsWith(".jsonl"))
    .sort()) {
    for (const r of await readJsonl(join(dir, f))) {
      if (out.length >= max) return out;
      const resps = Array.isArray(r.resps)
        ? r.resps.map((x) => (Array.isArray(x) ? Number(x[0]) : Number(x)))
        : [];
      const continuations = Array.isArray(r.continuations) ? r.continuations.map(String) : [];
      out.push({
        ...row,
        task: String(r.task ?? f.slice(8, -6)),
        id: String(r.doc_id ?? ""),
        context: String(r.context ?? ""),
        options: continuations,
        logprobs: resps,
        gold: typeof r.gold === "number" ? r.gold : -1,
        pred: resps.length ? resps.indexOf(Math.max(...resps)) : -1,
      });
    }
  }
  return out;
}

function resolveFile(stage: StageRecord, file: string | undefined): string | undefined {
  if (!file) return undefined;
  return isAbsolute(file) ? file : join(stage.outputDir, file);
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
    const resultsFile = resolveFile(stage, files.results);
    if (stage.kind === "eval" && resultsFile && existsSync(resultsFile)) {
      const configured = (manifest.config as { stages?: { label?: unknown }[] } | undefined)?.stages?.[i]
        ?.label;
      const label = typeof configured === "string" ? configured : stageLabel(manifest.stages, i);
      const model = branchOf(manifest.stages, i).base;
      const display = bases.size > 1 ? `${model} ${label}` : label;
      const tasks = await readEvalResults(resultsFile);
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
          dirname(resultsFile),
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
