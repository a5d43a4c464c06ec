/**
 * Pre-flight checks: everything that can be known wrong before any stage starts, so that a run never fails
 * an hour in (or after writing its run folder) on a typo. `hippo run --dry-run` runs them, and so does the
 * start of every run, before anything is written. Every problem is gathered into one error:
 *
 *   - the run folder is a folder or absent (never a file, nor under a file), and no stage folder it would
 *     write exists unless an earlier run of this pipeline made it (a run never deletes what it did not make);
 *   - each base model is an HF folder with a `config.json` that states `vocab_size`, and its tokenizer loads
 *     and fits it: a tokenizer with more tokens than the model has embedding rows would fail later on the
 *     first out-of-range id;
 *   - each stage's own `check(settings, context)`: data files exist and parse, tasks are known, ...
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { HippoError, isPlainObject, readJsonFile } from "@hippocrates/core";
import { type ConfigIssue, configError, formatPath } from "../config/issues.js";
import type { BaseModel, PipelineConfig } from "../config/load.js";
import { MANIFEST_FILE, type RunManifest, readManifest, stageOutputDir } from "./manifest.js";

/** "problem" of a HippoError without its key (the issue's path names the key). */
function reasonOf(e: unknown): string {
  if (!(e instanceof HippoError)) return (e as Error)?.message ?? String(e);
  const where = [e.location.file ? `${e.location.file}${e.location.line ? `:${e.location.line}` : ""}` : ""]
    .concat(e.location.row !== undefined ? [`row ${e.location.row}`] : [])
    .filter(Boolean)
    .join(", ");
  let msg = where ? `${where}: ${e.reason}` : e.reason;
  if (e.expected !== undefined && e.got !== undefined) msg += ` (expected ${e.expected}, got ${e.got})`;
  else if (e.expected !== undefined) msg += ` (expected ${e.expected})`;
  else if (e.got !== undefined) msg += ` (got ${e.got})`;
  return msg;
}

/** A folder that may be created: absent (with no file on the way to it) or a folder. */
export function folderProblem(path: string): string | undefined {
  if (existsSync(path))
    return statSync(path).isDirectory() ? undefined : `expected a folder, got a file: ${path}`;
  for (let p = dirname(path); p !== dirname(p); p = dirname(p)) {
    if (existsSync(p))
      return statSync(p).isDirectory() ? undefined : `${p} is a file, so ${path} cannot be a folder`;
  }
  return undefined;
}

async function checkBaseModel(m: BaseModel, issues: ConfigIssue[]): Promise<void> {
  const key = m.key === "model" ? "model" : `${m.key}.model`;
  const tokKey = m.key === "model" ? "tokenizer" : `${m.key}.tokenizer`;
  let vocabSize: number | undefined;
  if (!existsSync(m.model)) issues.push({ path: key, message: `path does not exist: ${m.model}` });
  else if (!statSync(m.model).isDirectory())
    issues.push({ path: key, message: `expected a model folder, got a file: ${m.model}` });
  else if (!existsSync(join(m.model, "config.json")))
    issues.push({ path: key, message: `not an HF model folder (no config.json): ${m.model}` });
  else {
    try {
      const config = await readJsonFile(join(m.model, "config.json"));
      if (!isPlainObject(config) || typeof config.vocab_size !== "number")
        issues.push({ path: key, message: `${join(m.model, "config.json")} has no numeric vocab_size` });
      else vocabSize = config.vocab_size;
    } catch (e) {
      issues.push({ path: key, message: reasonOf(e) });
    }
  }
  if (!existsSync(m.tokenizer)) {
    issues.push({ path: tokKey, message: `path does not exist: ${m.tokenizer}` });
    return;
  }
  if (!statSync(m.tokenizer).isDirectory() || !existsSync(join(m.tokenizer, "tokenizer.json"))) {
    issues.push({ path: tokKey, message: `not a tokenizer folder (no tokenizer.json): ${m.tokenizer}` });
    return;
  }
  try {
    const { loadTokenizer } = await import("@hippocrates/tokenizer");
    const tok = await loadTokenizer(m.tokenizer);
    if (vocabSize !== undefined && tok.vocabSize > vocabSize)
      issues.push({
        path: tokKey,
        message: `the tokenizer has ${tok.vocabSize} tokens but the model's vocab_size is ${vocabSize} (${m.model}): token ids from ${vocabSize} on have no embedding row`,
      });
  } catch (e) {
    issues.push({ path: tokKey, message: reasonOf(e) });
  }
}

/** Check everything that can be checked before work starts; throws one INVALID_CONFIG listing every problem. */
export async function checkPipeline(config: PipelineConfig, previous?: RunManifest): Promise<void> {
  const issues: ConfigIssue[] = [];
  const runDir = config.outputDir;
  const runDirProblem = folderProblem(runDir);
  if (runDirProblem) issues.push({ path: "output_dir", message: runDirProblem });
  else if (previous === undefined && existsSync(join(runDir, MANIFEST_FILE))) {
    try {
      previous = await readManifest(runDir);
    } catch (e) {
      issues.push({ path: "output_dir", message: reasonOf(e) });
    }
  }
  if (!runDirProblem) {
    for (const stage of config.stages) {
      const old = previous?.stages.find((s) => s.id === stage.id);
      const dir = stageOutputDir(runDir, stage, old);
      if (existsSync(dir) && !previous?.stages.some((s) => s.outputDir === dir))
        issues.push({
          path: formatPath(["stages", stage.index]),
          message: `its folder ${dir} exists and no earlier run of this pipeline made it; move it away or choose another output_dir`,
        });
    }
  }
  for (const m of config.models) await checkBaseModel(m, issues);
  for (const stage of config.stages) {
    const tokenizer = config.models.find((m) => m.name === stage.base)?.tokenizer ?? "";
    try {
      await stage.check({ baseDir: dirname(config.file), tokenizer, log: () => {} });
    } catch (e) {
      const key = e instanceof HippoError ? e.location.key : undefined;
      issues.push({
        path: formatPath(["stages", stage.index, ...(key ? [key] : [])]),
        message: reasonOf(e),
      });
    }
  }
  if (issues.length > 0) throw configError(config.file, issues);
}
