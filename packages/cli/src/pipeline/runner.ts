/**
 * `hippo run`: the stages of a pipeline, each on its input (`from:`, default the previous stage), in file
 * order; stages form a tree rooted at the base models, so one config holds several branches
 * (base -> CPT -> SFT and base -> SFT), and a stage that several branches share runs once.
 *
 * Resumability comes from the manifest. Each stage has a fingerprint: its kind, settings and seed, and the
 * fingerprint of its input model (a base model's folders, or the stage that made the model; a stage that
 * passes its model through, like eval, passes its input's fingerprint on). A stage recorded `done` with the
 * same fingerprint and an output that still exists is reused; a stage recorded `running` (killed) or
 * `interrupted` (signal) with the same fingerprint runs again in the same folder, where the trainers find
 * their last checkpoint and resume from it. A stage that runs gives a new model, so the stages that take it
 * run too; other branches are untouched.
 */
import { existsSync } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { dirname, isAbsolute } from "node:path";
import {
  HippoError,
  isHippoError,
  type ModelArtifact,
  type PipelineStageOutput,
  type ProgressReporter,
  type ResolvedSource,
  silentProgress,
} from "@hippocrates/core";
import { parseHubId } from "@hippocrates/hub";
import type { BaseModel, PipelineConfig, ResolvedStage } from "../config/load.js";
import { checkPipeline } from "./checks.js";
import {
  fingerprint,
  machineInfo,
  packageVersions,
  type RunManifest,
  readManifest,
  type StageRecord,
  stableJson,
  stageOutputDir,
  writeManifest,
} from "./manifest.js";
import { type ResolvedBase, resolveBase } from "./models.js";

export interface RunPipelineOptions {
  progress?: ProgressReporter;
  signal?: AbortSignal;
  log?: (message: string) => void;
  /** Initialise the compute backend and describe it for the manifest (the CLI's initialises it). */
  backend?: () => Promise<unknown>;
}

export interface RunResult {
  runDir: string;
  manifest: RunManifest;
  /** Ids of the stages that ran in this invocation. */
  ran: string[];
  /** Ids of the stages reused from an earlier run. */
  skipped: string[];
}

/** A model in the graph: a base model or a stage's output. */
interface Node {
  artifact: ModelArtifact;
  /** Identifies the model: a base's folders, or the fingerprint of the stage that made it. */
  fingerprint: string;
  /** The model was (re)made in this invocation, so what takes it must run too. */
  changed: boolean;
}

type Action = "reuse" | "resume" | "run";

/**
 * A base model's node. A folder is identified by its paths (as before Hub ids existed, so older run folders
 * keep their fingerprints); a Hub model by its id and the commit it resolved to, so a new commit of a branch
 * re-runs what takes it. Without a resolution (a `--dry-run` plan with nothing cached) the id and revision
 * asked for stand in.
 */
function baseNode(m: BaseModel, resolved: ResolvedBase | undefined): Node {
  const artifact: ModelArtifact = resolved?.artifact ?? { kind: "hf-model", path: m.model };
  const hub = resolved?.model.hub;
  const tokenizer = resolved?.tokenizer ?? m.tokenizer ?? m.model;
  return {
    artifact,
    fingerprint: fingerprint(
      hub
        ? {
            model: hub.repo,
            commit: hub.commit,
            tokenizer: resolved?.sources.find((x) => x.role.startsWith("tokenizer"))?.commit ?? tokenizer,
          }
        : { model: resolved?.model.path ?? m.model, tokenizer: m.tokenizer ?? m.model },
    ),
    changed: false,
  };
}

function baseNodes(config: PipelineConfig, resolved: Map<string, ResolvedBase>): Map<string, Node> {
  return new Map(config.models.map((m) => [m.name, baseNode(m, resolved.get(m.name))]));
}

function stageFingerprint(config: PipelineConfig, stage: ResolvedStage, input: Node): string {
  return fingerprint({
    kind: stage.kind,
    module: stage.module,
    seed: stage.seed,
    settings: stage.settings,
    // Relative paths in the settings are relative to the pipeline file's folder.
    baseDir: dirname(config.file),
    input: input.fingerprint,
  });
}

/** A stage's output is still there: its folder, or (a stage that passed a Hub model on) the Hub id. */
function outputExists(out: StageRecord["output"]): boolean {
  if (out === undefined) return false;
  const m = out.model;
  return (
    existsSync(m.path) || (m.kind === "hf-model" && m.revision !== undefined && parseHubId(m.path) !== null)
  );
}

function decide(input: Node, fp: string, old: StageRecord | undefined): Action {
  if (input.changed || !old || old.fingerprint !== fp) return "run";
  if (old.status === "done" && outputExists(old.output)) return "reuse";
  if (old.status === "running" || old.status === "interrupted") return "resume";
  return "run";
}

const sameArtifact = (a: ModelArtifact, b: ModelArtifact | undefined) =>
  b !== undefined && stableJson(a) === stableJson(b);

/** The model a stage leaves to the stages that take it. */
function nodeAfter(input: Node, fp: string, model: ModelArtifact, ran: boolean): Node {
  // A stage that passes its model through (eval, a model card) does not make a new model.
  if (sameArtifact(model, input.artifact)) return input;
  return { artifact: model, fingerprint: fp, changed: ran };
}

function inputOf(nodes: Map<string, Node>, stage: ResolvedStage): Node {
  const node = nodes.get(stage.from);
  if (!node) throw new HippoError("INTERNAL", `stage ${stage.id}: no input ${JSON.stringify(stage.from)}`);
  return node;
}

export async function runPipeline(
  config: PipelineConfig,
  options: RunPipelineOptions = {},
): Promise<RunResult> {
  const log = options.log ?? (() => {});
  const progress = options.progress ?? silentProgress;
  const signal = options.signal ?? new AbortController().signal;
  const runDir = config.outputDir;
  const previous = await readManifest(runDir);
  // Every check before anything is written.
  await checkPipeline(config, previous, { progress });

  // The base models, resolved once for the whole run: a Hub model is downloaded here (or found in the cache)
  // and pinned to the commit it resolved to.
  const resolved = new Map<string, ResolvedBase>();
  for (const m of config.models) resolved.set(m.name, await resolveBase(m, "model", progress));
  const sources: ResolvedSource[] = [...resolved.values()].flatMap((r) => r.sources);

  const now = new Date().toISOString();
  const backend = options.backend
    ? await options.backend()
    : { name: "none (not initialised by the caller)" };
  await mkdir(runDir, { recursive: true });
  const manifest: RunManifest = {
    format: "hippo-run/1",
    name: config.name,
    status: "running",
    createdAt: previous?.createdAt ?? now,
    updatedAt: now,
    configFile: config.file,
    config: manifestConfig(config),
    packages: packageVersions(),
    backend,
    machine: machineInfo(),
    sources,
    stages: [],
  };

  // Planned records first, so the manifest always lists the whole pipeline.
  const olds = new Map<string, StageRecord | undefined>();
  for (const stage of config.stages) {
    const old = previous?.stages.find((s) => s.id === stage.id);
    olds.set(stage.id, old);
    manifest.stages.push({
      id: stage.id,
      kind: stage.kind,
      ...(stage.module ? { module: stage.module } : {}),
      from: stage.from,
      base: stage.base,
      fingerprint: "",
      status:
        old?.status === "done" || old?.status === "running" || old?.status === "interrupted"
          ? old.status
          : "pending",
      outputDir: stageOutputDir(runDir, stage, old),
      attempts: old?.attempts ?? 0,
      ...(old?.output ? { output: old.output } : {}),
    });
  }

  const nodes = baseNodes(config, resolved);
  const ran: string[] = [];
  const skipped: string[] = [];
  for (const [i, stage] of config.stages.entries()) {
    const record = manifest.stages[i] as StageRecord;
    const old = olds.get(stage.id);
    const input = inputOf(nodes, stage);
    const fp = stageFingerprint(config, stage, input);
    record.fingerprint = fp;
    record.input = input.artifact;
    const action = decide(input, fp, old);
    if (action === "reuse" && old?.output) {
      Object.assign(record, {
        status: "done",
        startedAt: old.startedAt,
        finishedAt: old.finishedAt,
        seconds: old.seconds,
        output: old.output,
      });
      log(`[${stage.id}] done in an earlier run: skipped (output ${old.output.model.path})`);
      skipped.push(stage.id);
      nodes.set(stage.id, nodeAfter(input, fp, old.output.model, false));
      continue;
    }
    if (signal.aborted) throw new HippoError("ABORTED", "run aborted");
    log(
      `[${stage.id}] ${action === "resume" ? "resuming interrupted stage" : "running"} (${stage.kind}${stage.module ? ` from ${stage.module}` : ""}, on ${stage.from})`,
    );
    record.status = "running";
    record.attempts += 1;
    record.startedAt = new Date().toISOString();
    delete record.finishedAt;
    delete record.error;
    delete record.output;
    // A stage that starts over (new settings or input) must not resume from another run's checkpoints. Its
    // folder is removed only when this pipeline made it (the pre-flight check refuses any other).
    if (action === "run" && existsSync(record.outputDir)) await rm(record.outputDir, { recursive: true });
    await mkdir(record.outputDir, { recursive: true });
    await writeManifest(runDir, manifest);
    const t0 = performance.now();
    let output: PipelineStageOutput;
    try {
      output = await stage.run(input.artifact, {
        outputDir: record.outputDir,
        runDir,
        baseDir: dirname(config.file),
        tokenizer: resolved.get(stage.base)?.tokenizer ?? "",
        seed: stage.seed,
        progress,
        signal,
        log: (m) => log(`[${stage.id}] ${m}`),
      });
      if (!output || typeof output !== "object" || !output.model || typeof output.model.path !== "string") {
        throw new HippoError("INTERNAL", "stage returned no model artifact", {
          key: `stages[${stage.index}]`,
          expected: "{ model, metrics, files }",
        });
      }
    } catch (e) {
      record.status = isHippoError(e, "ABORTED") || signal.aborted ? "interrupted" : "failed";
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
    if (output.sources?.length) record.output.sources = output.sources;
    await writeManifest(runDir, manifest);
    log(`[${stage.id}] done in ${record.seconds.toFixed(1)} s ${formatMetrics(record.output.metrics)}`);
    ran.push(stage.id);
    nodes.set(stage.id, nodeAfter(input, fp, output.model, true));
  }
  manifest.status = "done";
  await writeManifest(runDir, manifest);
  return { runDir, manifest, ran, skipped };
}

/** The resolved config as the manifest records it (settings as written; paths of the pipeline resolved). */
function manifestConfig(config: PipelineConfig) {
  return {
    name: config.name,
    file: config.file,
    models: Object.fromEntries(
      config.models.map((m) => [
        m.name,
        { model: m.model, revision: m.revision, tokenizer: m.tokenizer ?? m.model },
      ]),
    ),
    output_dir: config.outputDir,
    seed: config.seed,
    backend: config.backend,
    threads: config.threads,
    stages: config.stages.map((s) => ({
      id: s.id,
      kind: s.kind,
      from: s.from,
      ...(s.module ? { module: s.module } : {}),
      seed: s.seed,
      ...s.written,
    })),
  };
}

function formatMetrics(metrics: Record<string, number>): string {
  const parts = Object.entries(metrics)
    .slice(0, 6)
    .map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toPrecision(4)}`);
  return parts.length ? `(${parts.join(" ")})` : "";
}

const fmtValue = (v: unknown) => (typeof v === "object" ? JSON.stringify(v) : String(v));

/** The branches of the pipeline: one line per leaf, from its base model. */
export function branches(config: PipelineConfig): string[][] {
  const takers = new Set(config.stages.map((s) => s.from));
  const byId = new Map(config.stages.map((s) => [s.id, s]));
  const out: string[][] = [];
  for (const leaf of config.stages.filter((s) => !takers.has(s.id))) {
    const chain: string[] = [];
    for (let s: ResolvedStage | undefined = leaf; s; s = byId.get(s.from)) {
      chain.unshift(s.id);
      if (!byId.has(s.from)) chain.unshift(s.from);
    }
    out.push(chain);
  }
  return out;
}

/**
 * The `--dry-run` plan: the base models, each stage with its input and what would happen to it (reused,
 * resumed, run), and the branches. A stage that would run is assumed to make a new model unless an earlier
 * run saw it pass its model through.
 */
export async function describePlan(config: PipelineConfig): Promise<string> {
  const previous = await readManifest(config.outputDir).catch(() => undefined);
  // What the run would use, looked up in the cache only: a plan downloads nothing.
  const resolved = new Map<string, ResolvedBase>();
  const notCached = new Set<string>();
  for (const m of config.models) {
    if (isAbsolute(m.model) && (m.tokenizer === undefined || isAbsolute(m.tokenizer))) continue;
    try {
      resolved.set(m.name, await resolveBase(m, "config", silentProgress, { offline: true }));
    } catch {
      notCached.add(m.name);
    }
  }
  const describe = (m: BaseModel) => {
    const hub = resolved.get(m.name)?.model.hub;
    const parts = [`${m.name} = ${m.model}`];
    if (m.revision !== undefined) parts.push(`revision ${m.revision}`);
    if (hub) parts.push(`commit ${hub.commit} (cached)`);
    if (notCached.has(m.name)) parts.push("not in the Hugging Face cache: fetched when the run starts");
    if (m.tokenizer !== undefined && m.tokenizer !== m.model) parts.push(`tokenizer ${m.tokenizer}`);
    return parts.join(", ");
  };
  const lines = [
    `pipeline ${config.name} (${config.file})`,
    ...config.models.map((m, i) => `  ${i === 0 ? "models:   " : "          "} ${describe(m)}`),
    `  run dir:   ${config.outputDir}`,
    `  seed:      ${config.seed}   backend: ${config.backend}${config.threads ? ` x${config.threads}` : ""}`,
    "stages:",
  ];
  const nodes = baseNodes(config, resolved);
  for (const stage of config.stages) {
    const old = previous?.stages.find((s) => s.id === stage.id);
    const input = inputOf(nodes, stage);
    const fp = stageFingerprint(config, stage, input);
    const action = decide(input, fp, old);
    const state =
      action === "reuse"
        ? "done earlier (reused)"
        : action === "resume"
          ? "interrupted (resumes)"
          : old?.status === "done"
            ? "to run again (settings or input changed)"
            : "to run";
    lines.push(
      `  ${stage.index + 1}. ${stage.id} [${stage.kind}${stage.module ? `, module ${stage.module}` : ""}] ${state}`,
    );
    const settings = Object.entries(stage.written)
      .map(([k, v]) => `${k}=${fmtValue(v)}`)
      .join(" ");
    lines.push(`       from ${stage.from}${settings ? `; ${settings}` : ""}`);
    const passedThrough = old?.output !== undefined && sameArtifact(old.output.model, old.input);
    const model: ModelArtifact =
      action === "reuse" && old?.output
        ? old.output.model
        : passedThrough
          ? input.artifact
          : { kind: "hf-model", path: `(${stage.id} output)` };
    nodes.set(stage.id, nodeAfter(input, fp, model, action !== "reuse"));
  }
  lines.push("branches:");
  for (const chain of branches(config)) lines.push(`  ${chain.join(" -> ")}`);
  return lines.join("\n");
}
