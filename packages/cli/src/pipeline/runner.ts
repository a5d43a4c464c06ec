/**
 * `hippo run`: stages in the order the config gives, each stage's output model is the next one's input.
 *
 * Resumability comes from the manifest: a stage recorded `done` with the same fingerprint (settings + input)
 * and an output that still exists is skipped; a stage recorded `running` was interrupted and runs again in
 * the same folder, where the trainers find their last checkpoint and resume from it. Once a stage runs, every
 * later stage runs too (its input changed).
 */
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import {
  HippoError,
  type ModelArtifact,
  type PipelineStage,
  type PipelineStageOutput,
  type ProgressReporter,
  silentProgress,
} from "@hippocrates/core";
import type { PipelineConfig, ResolvedStage } from "../config/load.js";
import { createBuiltinStage, type RunSettings } from "./builtin.js";
import {
  fingerprint,
  machineInfo,
  packageVersions,
  type RunManifest,
  readManifest,
  type StageRecord,
  writeManifest,
} from "./manifest.js";

export interface RunPipelineOptions {
  progress?: ProgressReporter;
  signal?: AbortSignal;
  log?: (message: string) => void;
  /** Describe the compute backend for the manifest (the CLI initialises it before the run). */
  backend?: () => Promise<unknown>;
}

export interface RunResult {
  runDir: string;
  manifest: RunManifest;
  /** Ids of the stages that ran in this invocation (the rest were skipped). */
  ran: string[];
  skipped: string[];
}

function isPipelineStage(v: unknown): v is PipelineStage {
  return (
    v !== null &&
    typeof v === "object" &&
    typeof (v as PipelineStage).run === "function" &&
    typeof (v as PipelineStage).kind === "string"
  );
}

/** Load a user's stage module: its default export, an export named `stage`, or its only PipelineStage export. */
export async function loadStageModule(file: string, key: string): Promise<PipelineStage> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    throw new HippoError("INVALID_CONFIG", `cannot load stage module: ${(e as Error).message}`, {
      file,
      key,
      cause: e,
    });
  }
  const candidates = [mod.default, mod.stage, ...Object.values(mod)];
  for (const c of candidates) {
    if (isPipelineStage(c)) return c;
    // A factory `() => PipelineStage` is accepted too.
    if (typeof c === "function" && c.length === 0) {
      try {
        const made = (c as () => unknown)();
        if (isPipelineStage(made)) return made;
      } catch {
        // not a factory
      }
    }
  }
  throw new HippoError("INVALID_CONFIG", "stage module exports no PipelineStage", {
    file,
    key,
    expected: "an export { kind: string, run(input, context) } (default, `stage`, or a factory)",
    got: `exports ${Object.keys(mod).join(", ") || "nothing"}`,
  });
}

/** Resolve every stage's implementation before anything is written, so a bad module fails the run up front. */
export async function resolveStages(config: PipelineConfig): Promise<Map<string, PipelineStage>> {
  const settings: RunSettings = {
    tokenizer: config.tokenizer,
    backend: config.backend,
    threads: config.threads,
  };
  const out = new Map<string, PipelineStage>();
  for (const [i, stage] of config.stages.entries()) {
    out.set(
      stage.id,
      stage.module
        ? await loadStageModule(stage.module, `stages[${i}].module`)
        : createBuiltinStage(stage, settings),
    );
  }
  return out;
}

function stageInputConfig(stage: ResolvedStage, config: PipelineConfig): Record<string, unknown> {
  const c = stage.config as Record<string, unknown>;
  // User modules get their free-form `config` block (or the built-in keys they replace) and the run's tokenizer.
  if (stage.module) {
    const own =
      (c.config as Record<string, unknown> | undefined) ??
      Object.fromEntries(Object.entries(c).filter(([k]) => !["kind", "name", "module", "seed"].includes(k)));
    return { ...own, tokenizer: config.tokenizer };
  }
  return c;
}

function outputExists(out: PipelineStageOutput | StageRecord["output"]): boolean {
  if (!out) return false;
  return existsSync(out.model.path);
}

export async function runPipeline(
  config: PipelineConfig,
  options: RunPipelineOptions = {},
): Promise<RunResult> {
  const log = options.log ?? (() => {});
  const progress = options.progress ?? silentProgress;
  const signal = options.signal ?? new AbortController().signal;
  const impls = await resolveStages(config);

  const runDir = config.outputDir;
  const previous = await readManifest(runDir);
  await mkdir(runDir, { recursive: true });
  const now = new Date().toISOString();
  const manifest: RunManifest = {
    format: "hippo-run/1",
    name: config.name,
    status: "running",
    createdAt: previous?.createdAt ?? now,
    updatedAt: now,
    configFile: config.file,
    config: {
      ...config,
      stages: config.stages.map((s) => ({
        id: s.id,
        module: s.module,
        seed: s.seed,
        ...s.config,
      })),
    },
    packages: packageVersions(),
    backend: options.backend ? await options.backend() : { name: "none (not initialised by the caller)" },
    machine: machineInfo(),
    stages: [],
  };

  let input: ModelArtifact = { kind: "hf-model", path: config.model };
  let invalidated = false;
  const ran: string[] = [];
  const skipped: string[] = [];

  // Planned records first, so the manifest always lists the whole pipeline.
  for (const [i, stage] of config.stages.entries()) {
    const old = previous?.stages.find((s) => s.id === stage.id);
    manifest.stages.push({
      id: stage.id,
      kind: stage.kind,
      ...(stage.module ? { module: stage.module } : {}),
      fingerprint: "",
      status: old?.status === "done" || old?.status === "running" ? old.status : "pending",
      outputDir: join(runDir, `${String(i + 1).padStart(2, "0")}-${stage.id}`),
      attempts: old?.attempts ?? 0,
      ...(old?.output ? { output: old.output } : {}),
    });
  }

  for (const [i, stage] of config.stages.entries()) {
    const record = manifest.stages[i] as StageRecord;
    const old = previous?.stages.find((s) => s.id === stage.id);
    record.fingerprint = fingerprint({
      kind: stage.kind,
      module: stage.module,
      seed: stage.seed,
      config: stage.config,
      input,
    });
    record.input = input;
    const canSkip =
      !invalidated &&
      old?.status === "done" &&
      old.fingerprint === record.fingerprint &&
      outputExists(old.output);
    if (canSkip && old?.output) {
      Object.assign(record, {
        status: "done",
        startedAt: old.startedAt,
        finishedAt: old.finishedAt,
        seconds: old.seconds,
        output: old.output,
      });
      log(`[${stage.id}] done in an earlier run: skipped (output ${old.output.model.path})`);
      skipped.push(stage.id);
      input = old.output.model;
      continue;
    }
    invalidated = true;
    if (signal.aborted) throw new HippoError("ABORTED", "run aborted");
    const resumed = old?.status === "running" && old.fingerprint === record.fingerprint;
    log(
      `[${stage.id}] ${resumed ? "resuming interrupted stage" : "running"} (${stage.kind}${stage.module ? ` from ${stage.module}` : ""})`,
    );
    record.status = "running";
    record.attempts += 1;
    record.startedAt = new Date().toISOString();
    delete record.finishedAt;
    delete record.error;
    delete record.output;
    // A stage that starts over (new settings or input) must not resume from the checkpoints of another run.
    if (!resumed) await rm(record.outputDir, { recursive: true, force: true });
    await mkdir(record.outputDir, { recursive: true });
    await writeManifest(runDir, manifest);
    const t0 = performance.now();
    const impl = impls.get(stage.id) as PipelineStage;
    let output: PipelineStageOutput;
    try {
      output = await impl.run(
        { model: input, config: stageInputConfig(stage, config) },
        {
          outputDir: record.outputDir,
          runDir,
          baseDir: dirname(config.file),
          tokenizer: config.tokenizer,
          seed: stage.seed,
          progress,
          signal,
          log: (m) => log(`[${stage.id}] ${m}`),
        },
      );
      if (!output || typeof output !== "object" || !output.model || typeof output.model.path !== "string") {
        throw new HippoError("INTERNAL", "stage returned no model artifact", {
          key: `stages[${i}]`,
          expected: "{ model, metrics, files }",
        });
      }
    } catch (e) {
      record.status = "failed";
      record.error = (e as Error).message;
      record.seconds = (performance.now() - t0) / 1000;
      manifest.status = "failed";
      await writeManifest(runDir, manifest);
      throw e;
    }
    record.status = "done";
    record.finishedAt = new Date().toISOString();
    record.seconds = (performance.now() - t0) / 1000;
    record.output = { model: output.model, metrics: output.metrics ?? {}, files: output.files ?? {} };
    await writeManifest(runDir, manifest);
    log(`[${stage.id}] done in ${record.seconds.toFixed(1)} s ${formatMetrics(record.output.metrics)}`);
    ran.push(stage.id);
    input = output.model;
  }
  manifest.status = "done";
  await writeManifest(runDir, manifest);
  return { runDir, manifest, ran, skipped };
}

function formatMetrics(metrics: Record<string, number>): string {
  const parts = Object.entries(metrics)
    .slice(0, 6)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toPrecision(4)}`);
  return parts.length ? `(${parts.join(" ")})` : "";
}

/** The `--dry-run` plan: what would run, in order, with what, and what would be skipped. */
export async function describePlan(config: PipelineConfig): Promise<string> {
  const previous = await readManifest(config.outputDir).catch(() => undefined);
  const lines = [
    `pipeline ${config.name} (${config.file})`,
    `  model:     ${config.model}`,
    `  tokenizer: ${config.tokenizer}`,
    `  run dir:   ${config.outputDir}`,
    `  seed:      ${config.seed}   backend: ${config.backend}${config.threads ? ` x${config.threads}` : ""}`,
    "stages:",
  ];
  for (const [i, stage] of config.stages.entries()) {
    const old = previous?.stages.find((s) => s.id === stage.id);
    const state =
      old?.status === "done"
        ? "done earlier (skipped unless settings or input changed)"
        : old?.status === "running"
          ? "interrupted (resumes)"
          : "to run";
    const settings = Object.entries(stage.config as Record<string, unknown>)
      .filter(([k]) => k !== "kind" && k !== "name")
      .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
      .join(" ");
    lines.push(
      `  ${i + 1}. ${stage.id} [${stage.kind}${stage.module ? `, module ${stage.module}` : ""}] ${state}`,
    );
    if (settings) lines.push(`       ${settings}`);
  }
  return lines.join("\n");
}
