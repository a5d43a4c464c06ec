/**
 * Pre-flight checks: everything that can be known wrong before any stage starts, so that a run never fails
 * an hour in (or after writing its run folder) on a typo. `hippo run --dry-run` runs them, and so does the
 * start of every run, before anything is written. Every problem is gathered into one error:
 *
 *   - the run folder is a folder or absent (never a file, nor under a file), and no stage folder it would
 *     write exists unless an earlier run of this pipeline made it (a run never deletes what it did not make);
 *   - each base model is an HF folder (or a Hub id, whose config.json and tokenizer files are fetched, not its
 *     weights) with a `config.json` that states `vocab_size`, and its tokenizer loads and fits it: a tokenizer
 *     with more tokens than the model has embedding rows would fail later on the first out-of-range id;
 *   - each stage's own `check(settings, context)`: data files exist and parse, tasks are known, ...
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import {
  HippoError,
  isPlainObject,
  type ProgressReporter,
  readJsonFile,
  silentProgress,
} from "@hippocrates/core";
import { parseHubId } from "@hippocrates/hub";
import { type ConfigIssue, configError, formatPath } from "../config/issues.js";
import type { BaseModel, PipelineConfig } from "../config/load.js";
import { MANIFEST_FILE, type RunManifest, readManifest, stageOutputDir } from "./manifest.js";
import { resolveBase } from "./models.js";

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

/**
 * Check a base model and its tokenizer; returns the tokenizer folder the stages' checks get ("" when it is
 * unusable). A Hub id is resolved through the cache (config.json and the tokenizer files only: no weights are
 * downloaded before the run), so a misspelt id, a gated model or an uncached model under HF_HUB_OFFLINE is
 * reported here.
 */
async function checkBaseModel(
  m: BaseModel,
  issues: ConfigIssue[],
  progress: ProgressReporter,
): Promise<string> {
  const key = m.key === "model" ? "model" : `${m.key}.model`;
  const tokKey = m.key === "model" ? "tokenizer" : `${m.key}.tokenizer`;
  const local = (p: string) => existsSync(p) || parseHubId(p) === null;
  let modelDir = m.model;
  let tokenizer = m.tokenizer ?? m.model;
  if (!local(m.model) || (m.tokenizer !== undefined && !local(m.tokenizer))) {
    try {
      const r = await resolveBase(m, "config", progress);
      modelDir = r.model.path;
      tokenizer = r.tokenizer;
    } catch (e) {
      const where = e instanceof HippoError && /tokenizer/.test(e.location.key ?? "") ? tokKey : key;
      issues.push({ path: where, message: reasonOf(e) });
      return "";
    }
  }
  let vocabSize: number | undefined;
  if (!existsSync(modelDir)) issues.push({ path: key, message: `path does not exist: ${modelDir}` });
  else if (!statSync(modelDir).isDirectory())
    issues.push({ path: key, message: `expected a model folder, got a file: ${modelDir}` });
  else if (!existsSync(join(modelDir, "config.json")))
    issues.push({ path: key, message: `not an HF model folder (no config.json): ${modelDir}` });
  else {
    try {
      const config = await readJsonFile(join(modelDir, "config.json"));
      if (!isPlainObject(config) || typeof config.vocab_size !== "number")
        issues.push({ path: key, message: `${join(modelDir, "config.json")} has no numeric vocab_size` });
      else vocabSize = config.vocab_size;
    } catch (e) {
      issues.push({ path: key, message: reasonOf(e) });
    }
  }
  if (!existsSync(tokenizer)) {
    issues.push({ path: tokKey, message: `path does not exist: ${tokenizer}` });
    return "";
  }
  if (!statSync(tokenizer).isDirectory() || !existsSync(join(tokenizer, "tokenizer.json"))) {
    issues.push({ path: tokKey, message: `not a tokenizer folder (no tokenizer.json): ${tokenizer}` });
    return "";
  }
  try {
    const { loadTokenizer } = await import("@hippocrates/tokenizer");
    const tok = await loadTokenizer(tokenizer);
    if (vocabSize !== undefined && tok.vocabSize > vocabSize)
      issues.push({
        path: tokKey,
        message: `the tokenizer has ${tok.vocabSize} tokens but the model's vocab_size is ${vocabSize} (${m.model}): token ids from ${vocabSize} on have no embedding row`,
      });
  } catch (e) {
    issues.push({ path: tokKey, message: reasonOf(e) });
  }
  return tokenizer;
}

/** Check everything that can be checked before work starts; throws one INVALID_CONFIG listing every problem. */
export async function checkPipeline(
  config: PipelineConfig,
  previous?: RunManifest,
  options: { progress?: ProgressReporter } = {},
): Promise<void> {
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
  const tokenizers = new Map<string, string>();
  for (const m of config.models)
    tokenizers.set(m.name, await checkBaseModel(m, issues, options.progress ?? silentProgress));
  for (const stage of config.stages) {
    const tokenizer = tokenizers.get(stage.base) ?? "";
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
