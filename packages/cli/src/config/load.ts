/**
 * Read `pipeline.yaml`, validate it, resolve its graph, and bind each stage to its implementation and
 * validated settings. Nothing here writes. Problems are gathered and thrown as one HippoError that lists each
 * with its key path (`stages[2].learning_rate: expected number, got string`).
 *
 * Loading a config:
 *   1. parses YAML (errors name file, line and column; alias bombs are stopped with the same kind of error);
 *   2. validates the pipeline's own keys (schema.ts);
 *   3. names the base models (`model:` is `base`, `models:` adds more) and the stages (`name`, default the
 *      kind, numbered when it repeats), and resolves each stage's `from` (default: the previous stage) to an
 *      earlier stage or a base model;
 *   4. registers the stages the config needs: `stage_modules:` first, then a built-in for every kind still
 *      missing (the registry passed in may hold a user's stages already), and per-stage `module:`s;
 *   5. validates each stage's settings with its own `settings` schema;
 *   6. unless `check: false`, runs the pre-flight checks (pipeline/checks.ts): files, folders, models,
 *      tokenizers, and each stage's own `check`.
 */
import { existsSync } from "node:fs";
import { dirname, extname, isAbsolute, basename as pathBasename, resolve } from "node:path";
import {
  HippoError,
  isPlainObject,
  type ModelArtifact,
  type PipelineStage,
  type PipelineStageOutput,
  parseJsonSafe,
  readTextFile,
  type StageCheckContext,
  type StageContext,
  unknownNameMessage,
} from "@hippocrates/core";
import { parseHubId } from "@hippocrates/hub";
import { LineCounter, parseDocument, visit } from "yaml";
import {
  BUILTIN_STAGE_KINDS,
  createStageRegistry,
  loadModuleStage,
  loadStageModule,
  registerBuiltin,
  type StageRegistry,
} from "../pipeline/registry.js";
import { type ConfigIssue, configError, formatPath, validateWith } from "./issues.js";
import { type Backend, pipelineSchema, STAGE_ENTRY_KEYS, stageEntrySchema } from "./schema.js";

export { type ConfigIssue, formatPath } from "./issues.js";

/** A model a branch starts from. */
export interface BaseModel {
  /** `base` for the top-level `model:`, else its key under `models:`. */
  name: string;
  /** Absolute path of the HF folder, or a Hub id (`org/name`, `org/name@rev`) as the file writes it. */
  model: string;
  /** The `revision:` the file gives the model (a Hub id's `@rev` stays in `model`). */
  revision?: string;
  /** Absolute path of its tokenizer folder, or a Hub id; absent: the model's own tokenizer. */
  tokenizer?: string;
  /** Where the pipeline file sets it, for messages: `model` or `models.mistral`. */
  key: string;
}

/**
 * A model or tokenizer as a pipeline file names it: a path relative to the file's folder when it exists there
 * or does not look like a Hub id (`./base`, `/abs`, `runs/a/b`), else the Hub id itself (`org/name[@rev]`).
 */
export function modelRef(text: string, baseDir: string): string {
  const path = isAbsolute(text) ? text : resolve(baseDir, text);
  if (existsSync(path) || parseHubId(text) === null) return path;
  return text;
}

/** A stage entry, resolved: its place in the graph, its settings, and its implementation bound to them. */
export interface ResolvedStage {
  /** Unique id in the run, e.g. "sft" or "eval-2". */
  id: string;
  /** Position in the pipeline file's `stages` list. */
  index: number;
  kind: string;
  /** Its input: an earlier stage's id or a base model's name. */
  from: string;
  /** The base model at the root of its branch (its tokenizer is the stage's `context.tokenizer`). */
  base: string;
  /** Absolute path of the entry's `module:`, when it has one. */
  module: string | undefined;
  seed: number;
  /** The settings as the pipeline file writes them (every key but kind, name, from, module, seed). */
  written: Record<string, unknown>;
  /** The settings as the stage's schema returned them: what the stage receives, and what is fingerprinted. */
  settings: unknown;
  run(model: ModelArtifact, context: StageContext): Promise<PipelineStageOutput>;
  check(context: StageCheckContext): Promise<void>;
}

export interface PipelineConfig {
  /** Absolute path of the YAML file (or of the file that relative paths hang from). */
  file: string;
  name: string;
  /** The base models, `base` first when the file has a top-level `model:`. */
  models: BaseModel[];
  outputDir: string;
  seed: number;
  backend: Backend;
  threads: number | undefined;
  stages: ResolvedStage[];
}

export interface LoadOptions {
  /** Override the run folder (`hippo run --output DIR`). */
  outputDir?: string;
  /** Stages registered already (a user's, under any kind); built-ins fill in the kinds it lacks. */
  registry?: StageRegistry;
  /** Run the pre-flight checks (default true). `hippo run` checks at the start of the run instead. */
  check?: boolean;
}

export const YAML_MAX_ALIASES = 100;

/** Parse YAML text into prototype-free plain data. Every error names the file, line and column. */
export function parseYaml(text: string, file: string): unknown {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false, lineCounter });
  const err = doc.errors[0];
  if (err) {
    const pos = lineCounter.linePos(err.pos[0]);
    throw new HippoError(
      "INVALID_FORMAT",
      `invalid YAML at line ${pos.line}, column ${pos.col}: ${err.message.split("\n")[0]}`,
      { file, line: pos.line },
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: YAML_MAX_ALIASES });
  } catch (e) {
    // The yaml package stops a "billion laughs" document with a ReferenceError and no position: name the
    // first alias, where the expansion starts.
    let offset: number | undefined;
    visit(doc, {
      Alias(_key, node) {
        offset = node.range?.[0];
        return visit.BREAK;
      },
    });
    const pos = offset === undefined ? undefined : lineCounter.linePos(offset);
    throw new HippoError(
      "INVALID_FORMAT",
      `invalid YAML${pos ? ` at line ${pos.line}, column ${pos.col}` : ""}: ${(e as Error).message} (at most ${YAML_MAX_ALIASES} alias expansions)`,
      { file, ...(pos ? { line: pos.line } : {}), cause: e },
    );
  }
  // A JSON round trip drops anything YAML can express but JSON cannot (dates become strings) and gives
  // objects without a prototype.
  return parseJsonSafe(JSON.stringify(data ?? null), file);
}

export async function loadPipelineConfig(file: string, options: LoadOptions = {}): Promise<PipelineConfig> {
  const abs = resolve(file);
  let text: string;
  try {
    text = await readTextFile(abs);
  } catch (e) {
    if (e instanceof HippoError) throw e;
    throw new HippoError("NOT_FOUND", `cannot read pipeline config: ${(e as Error).message}`, {
      file: abs,
      cause: e,
    });
  }
  const data = extname(abs) === ".json" ? parseJsonSafe(text, abs) : parseYaml(text, abs);
  return resolvePipelineConfig(data, abs, options);
}

/** Validate a stage's settings with its own schema and bind them to it. */
export async function bindStage(
  stage: PipelineStage<unknown>,
  written: Record<string, unknown>,
  prefix: readonly PropertyKey[],
): Promise<
  | { ok: true; settings: unknown; bound: Pick<ResolvedStage, "run" | "check"> }
  | { ok: false; issues: ConfigIssue[] }
> {
  const v = await validateWith(stage.settings, written, prefix);
  if (v.issues) return { ok: false, issues: v.issues };
  const settings = v.value;
  return {
    ok: true,
    settings,
    bound: {
      run: (model, context) => stage.run({ model, config: settings }, context),
      check: async (context) => {
        await stage.check?.(settings, context);
      },
    },
  };
}

/** Validate already-parsed config data. `file` anchors relative paths. */
export async function resolvePipelineConfig(
  data: unknown,
  file: string,
  options: LoadOptions = {},
): Promise<PipelineConfig> {
  const baseDir = dirname(file);
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const issues: ConfigIssue[] = [];
  const fail = () => configError(file, issues);

  const top = await validateWith(pipelineSchema, data);
  if (top.issues) {
    issues.push(...top.issues);
    throw fail();
  }
  const c = top.value;

  // Base models.
  const models: BaseModel[] = [];
  const base = (name: string, key: string, m: { model: string; revision?: string; tokenizer?: string }) => {
    const model: BaseModel = { name, model: modelRef(m.model, baseDir), key };
    if (m.revision !== undefined) model.revision = m.revision;
    if (m.tokenizer !== undefined) model.tokenizer = modelRef(m.tokenizer, baseDir);
    if (m.revision !== undefined && model.model === resolve(baseDir, m.model))
      issues.push({
        path: key === "model" ? "revision" : `${key}.revision`,
        message: `a revision needs a Hub id (org/name) as the model, not the folder ${model.model}`,
      });
    return model;
  };
  if (c.model !== undefined)
    models.push(base("base", "model", { model: c.model, revision: c.revision, tokenizer: c.tokenizer }));
  else if (c.tokenizer !== undefined || c.revision !== undefined)
    issues.push({
      path: c.tokenizer !== undefined ? "tokenizer" : "revision",
      message: `a ${c.tokenizer !== undefined ? "tokenizer" : "revision"} without a \`model:\` (set \`model:\` too)`,
    });
  for (const [name, m] of Object.entries(c.models ?? {})) {
    if (name === "base") {
      issues.push({
        path: "models.base",
        message: '"base" is the top-level `model:`; give this one another name',
      });
      continue;
    }
    models.push(base(name, `models.${name}`, m));
  }
  if (models.length === 0)
    issues.push({
      path: "model",
      message: "missing (expected string): the base model's folder, or name base models under `models:`",
    });

  // Registry: the caller's stages, then the config's stage modules (they win), then built-ins on demand.
  const registry = options.registry ?? createStageRegistry();
  for (const [i, m] of (c.stage_modules ?? []).entries()) {
    try {
      for (const s of await loadStageModule(abs(m), `stage_modules[${i}]`)) registry.register(s);
    } catch (e) {
      if (!(e instanceof HippoError)) throw e;
      issues.push({
        path: `stage_modules[${i}]`,
        message: `${e.reason}${e.got ? ` (${e.got})` : ""}: ${abs(m)}`,
      });
    }
  }

  const stages: ResolvedStage[] = [];
  const ids = new Map<string, number>();
  const kindCount = new Map<string, number>();
  const baseOf = new Map<string, string>(models.map((m) => [m.name, m.name]));
  const modelNames = models.map((m) => m.name);

  for (const [i, raw] of c.stages.entries()) {
    const entry = await validateWith(stageEntrySchema, raw, ["stages", i]);
    if (entry.issues) {
      issues.push(...entry.issues);
      continue;
    }
    const e = entry.value;
    const n = (kindCount.get(e.kind) ?? 0) + 1;
    kindCount.set(e.kind, n);
    const id = e.name ?? (n === 1 ? e.kind : `${e.kind}-${n}`);
    if (ids.has(id) || modelNames.includes(id)) {
      issues.push({
        path: formatPath(["stages", i, "name"]),
        message: ids.has(id)
          ? `duplicate stage id ${JSON.stringify(id)} (stages[${ids.get(id)}] has it); give one a \`name:\``
          : `stage id ${JSON.stringify(id)} is the name of a base model; give the stage a \`name:\``,
      });
      continue;
    }

    // The input: a named earlier stage or base model, else the previous stage (the first: `base`).
    const previous = stages[stages.length - 1];
    const from = e.from ?? previous?.id ?? "base";
    let base = baseOf.get(from);
    if (base === undefined && models.length === 0) base = "";
    else if (base === undefined) {
      const later = c.stages
        .slice(i + 1)
        .some((s) => isPlainObject(s) && (s.name === from || (s.name === undefined && s.kind === from)));
      issues.push({
        path: formatPath(["stages", i, e.from === undefined ? "kind" : "from"]),
        message:
          e.from === undefined
            ? "the first stage has no input: set `model:` (the base model) or this stage's `from:`"
            : later
              ? `${JSON.stringify(from)} is a later stage; a stage takes an earlier stage's output or a base model`
              : `${unknownNameMessage("stage or model", from, [...ids.keys(), ...modelNames])} (earlier stages: ${[...ids.keys()].join(", ") || "none"}; models: ${modelNames.join(", ") || "none"})`,
      });
      base = "";
    }
    ids.set(id, i);
    baseOf.set(id, base);

    // The implementation.
    let impl: PipelineStage<unknown> | undefined;
    const module = e.module === undefined ? undefined : abs(e.module);
    try {
      if (module) impl = await loadModuleStage(module, e.kind, formatPath(["stages", i, "module"]));
      else if (await registerBuiltin(registry, e.kind)) impl = registry.get(e.kind);
    } catch (err) {
      if (!(err instanceof HippoError)) throw err;
      issues.push({
        path: formatPath(["stages", i, "module"]),
        message: `${err.reason}${err.got ? ` (${err.got})` : ""}: ${module}`,
      });
      continue;
    }
    if (!impl) {
      issues.push({
        path: formatPath(["stages", i, "kind"]),
        message: `${unknownNameMessage("stage kind", e.kind, new Set([...registry.kinds(), ...BUILTIN_STAGE_KINDS]))} (expected a built-in kind, a kind a \`stage_modules:\` module registers, or any name with a \`module:\`)`,
      });
      continue;
    }

    const written: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(e)) {
      if (!(STAGE_ENTRY_KEYS as readonly string[]).includes(k)) written[k] = v;
    }
    const bound = await bindStage(impl, written, ["stages", i]);
    if (!bound.ok) {
      issues.push(...bound.issues);
      continue;
    }
    stages.push({
      id,
      index: i,
      kind: e.kind,
      from,
      base,
      module,
      seed: e.seed ?? c.seed ?? 0,
      written,
      settings: bound.settings,
      ...bound.bound,
    });
  }

  if (issues.length > 0) throw fail();
  const name = c.name ?? pathBasename(file).replace(/\.(ya?ml|json)$/i, "");
  const config: PipelineConfig = {
    file,
    name,
    models,
    outputDir: options.outputDir ? resolve(options.outputDir) : abs(c.output_dir ?? `runs/${name}`),
    seed: c.seed ?? 0,
    backend: c.backend ?? "auto",
    threads: c.threads,
    stages,
  };
  if (options.check !== false) {
    const { checkPipeline } = await import("../pipeline/checks.js");
    await checkPipeline(config);
  }
  return config;
}
