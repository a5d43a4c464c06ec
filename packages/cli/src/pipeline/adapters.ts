import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  HippoError,
  type ModelArtifact,
  type PipelineStageOutput,
  readJsonlObjects,
  type ScoringModel,
  type StageContext,
} from "@hippocrates/core";
import type { CausalLM } from "@hippocrates/model";
import type { HfTokenizer } from "@hippocrates/tokenizer";
import type { EvalSettings } from "./builtin.js";

/** The objects of a JSONL data file; a bad line is an error naming file and line. */
export async function readJsonlRecords(file: string): Promise<Record<string, unknown>[]> {
  return (await readJsonlObjects(file)).map((r) => r.record);
}

function _field(rec: Record<string, unknown>, key: string, file: string, line: number): string {
  const v = rec[key];
  if (typeof v !== "string")
    throw new HippoError("INVALID_RECORD", `missing string field "${key}"`, {
      file,
      line,
      key,
      expected: "string",
      got: typeof v,
    });
  return v;
}

export async function ensureBackend(settings: {
  backend: "auto" | "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";
  threads?: number | undefined;
  tokenizer?: string;
}): Promise<unknown> {
  const { initBackend } = await import("@hippocrates/backend");
  return initBackend({
    backend: settings.backend,
    ...(settings.threads ? { threads: settings.threads } : {}),
  });
}

export async function loadRunTokenizer(dir: string): Promise<HfTokenizer> {
  const { loadTokenizer } = await import("@hippocrates/tokenizer");
  return loadTokenizer(dir);
}

/** Copy the tokenizer files beside a model so the folder is usable on its own (`hippo serve DIR`). */
export async function copyTokenizerFiles(from: string, to: string): Promise<void> {
  const model = await import("@hippocrates/model");
  await model.copyTokenizerFiles(from, to);
}

/** Load an artifact (adapters merged into their base, in order) with the model package's loader. */
export async function loadArtifactModel(artifact: ModelArtifact) {
  const model = await import("@hippocrates/model");
  return model.loadArtifact(artifact);
}

/** The model package's ScoringModel: shared-context batched scoring. */
export async function scoringModelFor(
  model: CausalLM,
  name: string,
  batchSize?: number,
): Promise<ScoringModel> {
  const { asScoringModel } = await import("@hippocrates/model");
  return asScoringModel(model, { name, ...(batchSize ? { batchSize } : {}) });
}

/** Task names, or task-definition files (JSON) loaded through the eval package. */
export async function resolveTasks(tasks: string[], baseDir = process.cwd()) {
  const ev = await import("@hippocrates/eval");
  return Promise.all(
    tasks.map((t) => (/[\\/]|\.json$/.test(t) ? ev.loadTaskFile(resolve(baseDir, t)) : Promise.resolve(t))),
  );
}

export async function runEvalStage(
  input: ModelArtifact,
  c: EvalSettings,
  ctx: StageContext,
): Promise<PipelineStageOutput> {
  const ev = await import("@hippocrates/eval");
  const tok = await loadRunTokenizer(ctx.tokenizer);
  const tasks = await resolveTasks(c.tasks, ctx.baseDir);
  const model = await loadArtifactModel(input);
  let output: Awaited<ReturnType<typeof ev.evaluate>>;
  try {
    // A fresh evaluation of a (possibly retrained) model must not reuse cached requests of an earlier one.
    const cacheDir = join(ctx.outputDir, "cache");
    output = await ev.evaluate({
      model: await scoringModelFor(model, input.path, c.batch_size),
      tokenizer: tok,
      tasks,
      ...(c.num_fewshot !== undefined ? { numFewshot: c.num_fewshot } : {}),
      ...(c.limit !== undefined ? { limit: c.limit } : {}),
      ...(c.profile ? { profile: c.profile } : {}),
      dataDir: c.data_dir ? resolve(ctx.baseDir, c.data_dir) : ctx.runDir,
      cacheDir,
      writeOut: ctx.outputDir,
      progress: ctx.progress,
      signal: ctx.signal,
      ...(c.batch_size ? { batchSize: c.batch_size } : {}),
    });
    await rm(cacheDir, { recursive: true, force: true });
  } finally {
    model.dispose();
  }
  const metrics: Record<string, number> = {};
  const accs: number[] = [];
  for (const [task, m] of Object.entries(output.results.results)) {
    for (const k of ["acc", "acc_norm"]) {
      const v = m[k];
      if (typeof v === "number") metrics[`${task}/${k}`] = v;
    }
    if (typeof m.acc === "number") accs.push(m.acc);
  }
  if (accs.length) metrics["average/acc"] = accs.reduce((a, b) => a + b, 0) / accs.length;
  await mkdir(ctx.outputDir, { recursive: true });
  return { model: input, metrics, files: { results: join(ctx.outputDir, "results.json") } };
}
