/**
 * Read `pipeline.yaml`, validate it, and resolve its paths. Nothing here writes: a config that fails any check
 * throws one HippoError that lists every problem with its key path.
 */
import { existsSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, dirname, extname, isAbsolute, resolve } from "node:path";
import { HippoError, parseJsonSafe } from "@hippocrates/core";
import { parseDocument } from "yaml";
import type { z } from "zod";
import {
  BUILTIN_STAGE_KINDS,
  BUILTIN_STAGE_SCHEMAS,
  type BuiltinStageKind,
  customStageSchema,
  pipelineSchema,
  type StageConfig,
} from "./schema.js";

export interface ResolvedStage {
  /** Unique id in the run, e.g. "sft" or "eval-2". */
  id: string;
  kind: string;
  /** Absolute path of the user's module, when the stage is replaced. */
  module: string | undefined;
  seed: number;
  /** The validated stage settings with paths made absolute. */
  config: StageConfig;
}

export interface PipelineConfig {
  /** Absolute path of the YAML file (or "<inline>"). */
  file: string;
  name: string;
  model: string;
  tokenizer: string;
  outputDir: string;
  seed: number;
  backend: "auto" | "tensorflow-gpu" | "tensorflow" | "wasm" | "cpu";
  threads: number | undefined;
  stages: ResolvedStage[];
}

/** One validation problem: where and what. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** `["stages", 1, "lr"]` -> `stages[1].lr`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out || "(top level)";
}

function typeName(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v;
}

/** zod issues -> our messages: `stages[1].lr: expected number, got string`. */
export function zodIssues(error: z.ZodError, prefix: PropertyKey[] = []): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    const path = formatPath([...prefix, ...issue.path]);
    const input = (issue as { input?: unknown }).input;
    switch (issue.code) {
      case "invalid_type":
        out.push({
          path,
          message:
            input === undefined
              ? `missing (expected ${issue.expected})`
              : `expected ${issue.expected}, got ${typeName(input)}`,
        });
        break;
      case "unrecognized_keys":
        for (const key of issue.keys) {
          out.push({ path: formatPath([...prefix, ...issue.path, key]), message: "unknown key" });
        }
        break;
      case "invalid_value":
        out.push({
          path,
          message: `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}, got ${JSON.stringify(input)}`,
        });
        break;
      case "too_small":
      case "too_big":
        out.push({ path, message: `${issue.message} (got ${JSON.stringify(input)})` });
        break;
      case "invalid_format":
        out.push({ path, message: `${issue.message}, got ${JSON.stringify(input)}` });
        break;
      default:
        out.push({ path, message: issue.message });
    }
  }
  return out;
}

function configError(file: string, issues: ConfigIssue[]): HippoError {
  const first = issues[0];
  const lines = issues.map((i) => `  ${i.path}: ${i.message}`).join("\n");
  return new HippoError(
    "INVALID_CONFIG",
    issues.length === 1 && first
      ? `invalid pipeline config: ${first.path}: ${first.message}`
      : `invalid pipeline config (${issues.length} problems):\n${lines}`,
    { file, key: first?.path },
  );
}

/** Parse YAML text into prototype-free plain data; syntax errors name the line. */
export function parseYaml(text: string, file: string): unknown {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  const err = doc.errors[0];
  if (err) {
    const line = err.linePos?.[0]?.line;
    throw new HippoError("INVALID_FORMAT", `invalid YAML: ${err.message.split("\n")[0]}`, { file, line });
  }
  // A JSON round trip drops anything YAML can express but JSON cannot (anchors resolved, dates as strings)
  // and gives objects without a prototype.
  return parseJsonSafe(JSON.stringify(doc.toJS({ maxAliasCount: 100 }) ?? null), file);
}

export interface LoadOptions {
  /** Override the run folder (`hippo run --output DIR`). */
  outputDir?: string;
  /** Skip checks that paths exist (used by `--dry-run` of a config meant for another machine). */
  checkPaths?: boolean;
}

export async function loadPipelineConfig(file: string, options: LoadOptions = {}): Promise<PipelineConfig> {
  const abs = resolve(file);
  let text: string;
  try {
    text = await readFile(abs, "utf8");
  } catch (e) {
    throw new HippoError("NOT_FOUND", `cannot read pipeline config: ${(e as Error).message}`, {
      file: abs,
      cause: e,
    });
  }
  const data = extname(abs) === ".json" ? parseJsonSafe(text, abs) : parseYaml(text, abs);
  return resolvePipelineConfig(data, abs, options);
}

const PATH_KEYS = ["data", "eval_data", "data_dir", "module"] as const;

/** Validate already-parsed config data. `file` anchors relative paths. */
export function resolvePipelineConfig(
  data: unknown,
  file: string,
  options: LoadOptions = {},
): PipelineConfig {
  const checkPaths = options.checkPaths ?? true;
  const base = dirname(file);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const issues: ConfigIssue[] = [];

  const top = pipelineSchema.safeParse(data, { reportInput: true });
  if (!top.success) {
    issues.push(...zodIssues(top.error));
    // Stage-level problems are still worth listing when the stages array itself is fine.
  }
  const rawStages = (data as { stages?: unknown })?.stages;
  const stages: ResolvedStage[] = [];
  const ids = new Set<string>();
  const kindCount = new Map<string, number>();
  const topSeed = top.success ? (top.data.seed ?? 0) : 0;

  if (Array.isArray(rawStages)) {
    rawStages.forEach((raw, i) => {
      const kind = (raw as { kind?: unknown })?.kind;
      if (typeof kind !== "string") return; // reported by the top-level schema
      const hasModule = typeof (raw as { module?: unknown }).module === "string";
      const isBuiltin = (BUILTIN_STAGE_KINDS as string[]).includes(kind);
      if (!isBuiltin && !hasModule) {
        issues.push({
          path: formatPath(["stages", i, "kind"]),
          message: `unknown stage kind ${JSON.stringify(kind)} (expected one of ${BUILTIN_STAGE_KINDS.join(", ")}, or any name with a "module:" that exports a PipelineStage)`,
        });
        return;
      }
      // A replaced built-in keeps its built-in settings schema unless it only has free-form `config`.
      const useCustom = !isBuiltin || (hasModule && "config" in (raw as object));
      const schema = useCustom ? customStageSchema : BUILTIN_STAGE_SCHEMAS[kind as BuiltinStageKind];
      const parsed = (schema as z.ZodType).safeParse(raw, { reportInput: true });
      if (!parsed.success) {
        issues.push(...zodIssues(parsed.error, ["stages", i]));
        return;
      }
      const config = { ...(parsed.data as StageConfig) } as Record<string, unknown>;
      for (const key of PATH_KEYS) {
        const value = config[key];
        if (typeof value !== "string") continue;
        config[key] = abs(value);
        if (checkPaths && !existsSync(config[key] as string)) {
          issues.push({
            path: formatPath(["stages", i, key]),
            message: `path does not exist: ${config[key]}`,
          });
        }
      }
      // Eval tasks are names, or task files (anything that looks like a path), resolved like the other paths.
      if (Array.isArray(config.tasks)) {
        config.tasks = (config.tasks as string[]).map((t, j) => {
          if (!/[\\/]|\.json$/.test(t)) return t;
          const p = abs(t);
          if (checkPaths && !existsSync(p))
            issues.push({
              path: formatPath(["stages", i, "tasks", j]),
              message: `task file does not exist: ${p}`,
            });
          return p;
        });
      }
      const n = (kindCount.get(kind) ?? 0) + 1;
      kindCount.set(kind, n);
      const id = (config.name as string | undefined) ?? (n === 1 ? kind : `${kind}-${n}`);
      if (ids.has(id)) {
        issues.push({
          path: formatPath(["stages", i, "name"]),
          message: `duplicate stage id ${JSON.stringify(id)}`,
        });
        return;
      }
      ids.add(id);
      stages.push({
        id,
        kind,
        module: typeof config.module === "string" ? config.module : undefined,
        seed: (config.seed as number | undefined) ?? topSeed,
        config: config as StageConfig,
      });
    });
  }

  let model = "";
  let tokenizer = "";
  if (top.success) {
    model = abs(top.data.model);
    tokenizer = abs(top.data.tokenizer ?? top.data.model);
    if (checkPaths) {
      if (!existsSync(model)) issues.push({ path: "model", message: `path does not exist: ${model}` });
      else if (!statSync(model).isDirectory())
        issues.push({ path: "model", message: `expected a model folder, got a file: ${model}` });
      else if (!existsSync(resolve(model, "config.json")))
        issues.push({ path: "model", message: `not an HF model folder (no config.json): ${model}` });
      if (model !== tokenizer && !existsSync(tokenizer))
        issues.push({ path: "tokenizer", message: `path does not exist: ${tokenizer}` });
    }
  }

  if (issues.length > 0 || !top.success) throw configError(file, issues);
  const name = top.data.name ?? basename(file).replace(/\.(ya?ml|json)$/i, "");
  return {
    file,
    name,
    model,
    tokenizer,
    outputDir: options.outputDir ? resolve(options.outputDir) : abs(top.data.output_dir ?? `runs/${name}`),
    seed: topSeed,
    backend: top.data.backend ?? "auto",
    threads: top.data.threads,
    stages,
  };
}
