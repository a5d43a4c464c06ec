/**
 * Gather what a report shows from a run folder: the manifest, each training stage's metrics JSONL (loss
 * curves), each eval stage's results.json and per-sample JSONL. Everything is read as untrusted JSON.
 */
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { dirname, isAbsolute, join } from "node:path";
import { HippoError, isPlainObject, readJsonFile, readJsonlObjects } from "@hippocrates/core";
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

/** The label of an eval stage from the training stages that ran before it. */
export function stageLabel(stages: StageRecord[], index: number): string {
  const parts: string[] = [];
  for (const s of stages.slice(0, index)) {
    const t = TRAIN_LABEL[s.kind];
    if (t && !parts.includes(t)) parts.push(t);
  }
  return parts.length ? `+${parts.join("+")}` : "base";
}

async function readJsonl(file: string): Promise<Record<string, unknown>[]> {
  return (await readJsonlObjects(file)).map((r) => r.record);
}

function resolveFile(stage: StageRecord, file: string | undefined): string | undefined {
  if (!file) return undefined;
  return isAbsolute(file) ? file : join(stage.outputDir, file);
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

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
      const results = await readJsonFile(resultsFile);
      const configured = (manifest.config as { stages?: { label?: unknown }[] } | undefined)?.stages?.[i]
        ?.label;
      const label = typeof configured === "string" ? configured : stageLabel(manifest.stages, i);
      const tasks: Record<string, TaskScore> = {};
      const byTask = isPlainObject(results) && isPlainObject(results.results) ? results.results : {};
      for (const [task, m] of Object.entries(byTask)) {
        if (!isPlainObject(m) || num(m.acc) === undefined) continue;
        const score: TaskScore = { acc: num(m.acc) as number };
        const norm = num(m.acc_norm);
        const se = num(m.acc_stderr);
        if (norm !== undefined) score.acc_norm = norm;
        if (se !== undefined) score.stderr = se;
        const ns =
          isPlainObject(results) && isPlainObject(results["n-samples"])
            ? results["n-samples"][task]
            : undefined;
        if (isPlainObject(ns) && num(ns.effective) !== undefined) score.n = num(ns.effective) as number;
        tasks[task] = score;
      }
      const accs = Object.values(tasks).map((t) => t.acc);
      data.evals.push({
        stage: stage.id,
        label,
        tasks,
        average: accs.length ? accs.reduce((a, b) => a + b, 0) / accs.length : Number.NaN,
      });
      const dir = dirname(resultsFile);
      for (const f of (await readdir(dir))
        .filter((n) => n.startsWith("samples_") && n.endsWith(".jsonl"))
        .sort()) {
        for (const r of await readJsonl(join(dir, f))) {
          if (data.samples.length >= maxSamples) break;
          const resps = Array.isArray(r.resps)
            ? r.resps.map((x) => (Array.isArray(x) ? Number(x[0]) : Number(x)))
            : [];
          const continuations = Array.isArray(r.continuations) ? r.continuations.map(String) : [];
          const pred = resps.length ? resps.indexOf(Math.max(...resps)) : -1;
          data.samples.push({
            stage: stage.id,
            label,
            task: String(r.task ?? f.slice(8, -6)),
            id: String(r.doc_id ?? ""),
            context: String(r.context ?? ""),
            options: continuations,
            logprobs: resps,
            gold: typeof r.gold === "number" ? r.gold : -1,
            pred,
          });
        }
      }
    }
  }
  return data;
}
