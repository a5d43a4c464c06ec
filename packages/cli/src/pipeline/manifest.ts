/**
 * The run manifest: one JSON file per run folder, rewritten atomically after every stage transition. It is
 * the record of what ran (resolved config, package versions, backend, timings, outputs, metrics) and the state
 * that lets a re-run skip finished stages.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { cpus, platform, release } from "node:os";
import { dirname, join } from "node:path";
import {
  HippoError,
  isPlainObject,
  type ModelArtifact,
  type ResolvedSource,
  readJsonFile,
  writeJsonAtomic,
} from "@hippocrates/core";

/** `interrupted`: stopped by a signal; like `running` (killed), it resumes from its last checkpoint. */
export type StageStatus = "pending" | "running" | "done" | "failed" | "interrupted";

export interface StageRecord {
  id: string;
  kind: string;
  module?: string;
  /** The stage's input: an earlier stage's id or a base model's name (`base`, or a key of `models:`). */
  from?: string;
  /** The base model at the root of the stage's branch. */
  base?: string;
  /**
   * sha256 of the stage's kind, settings, seed and its input model's fingerprint (a base model's paths, or
   * the stage that made the model): a change re-runs the stage and the stages that take its model, and no
   * other branch.
   */
  fingerprint: string;
  status: StageStatus;
  outputDir: string;
  attempts: number;
  startedAt?: string;
  finishedAt?: string;
  /** Wall time of the last attempt, seconds. */
  seconds?: number;
  /** The stage's model: a Hub model as `{ path: "org/name", revision: "<commit>" }`. */
  input?: ModelArtifact;
  output?: {
    model: ModelArtifact;
    metrics: Record<string, number>;
    files: Record<string, string>;
    /** What the stage read from the Hub at which commit (an eval stage's datasets). */
    sources?: ResolvedSource[];
  };
  error?: string;
}

export interface RunManifest {
  format: "hippo-run/1";
  name: string;
  status: "running" | "done" | "failed";
  createdAt: string;
  updatedAt: string;
  configFile: string;
  config: unknown;
  packages: Record<string, string>;
  backend: unknown;
  machine: { node: string; platform: string; cpu: string; cores: number };
  /** The base models and tokenizers read from the Hugging Face Hub, with the commits they resolved to. */
  sources?: ResolvedSource[];
  stages: StageRecord[];
}

export const MANIFEST_FILE = "manifest.json";

/**
 * The folder of a stage: `<run dir>/<NN>-<id>` (NN its position in the file), or the folder an earlier run
 * gave it, so that moving a stage in the file does not orphan its finished output.
 */
export function stageOutputDir(
  runDir: string,
  stage: { id: string; index: number },
  old: StageRecord | undefined,
): string {
  if (old && dirname(old.outputDir) === runDir) return old.outputDir;
  return join(runDir, `${String(stage.index + 1).padStart(2, "0")}-${stage.id}`);
}

export function fingerprint(value: unknown): string {
  return createHash("sha256").update(stableJson(value)).digest("hex").slice(0, 16);
}

/** JSON with sorted keys, so equal settings hash equally whatever their order in the YAML. */
export function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.keys(value)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

export function machineInfo(): RunManifest["machine"] {
  return {
    node: process.version,
    platform: `${platform()} ${release()}`,
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
  };
}

const PACKAGES = [
  "cli",
  "core",
  "backend",
  "safetensors",
  "tokenizer",
  "model",
  "train",
  "data",
  "eval",
  "hub",
];

/** Versions of the @hippocrates packages that are installed beside this one. */
export function packageVersions(): Record<string, string> {
  const require = createRequire(import.meta.url);
  const out: Record<string, string> = {};
  for (const name of PACKAGES) {
    const full = `@hippocrates/${name}`;
    try {
      let dir = dirname(name === "cli" ? new URL(import.meta.url).pathname : require.resolve(full));
      for (let i = 0; i < 4 && !existsSync(join(dir, "package.json")); i++) dir = dirname(dir);
      const pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === full && pkg.version) out[full] = pkg.version;
    } catch {
      // not installed: not part of this run
    }
  }
  return out;
}

/** A manifest as this module writes it: the format tag, and stage records with an id, kind and folder. */
function isRunManifest(data: unknown): data is RunManifest {
  return (
    isPlainObject(data) &&
    data.format === "hippo-run/1" &&
    Array.isArray(data.stages) &&
    data.stages.every(
      (s) =>
        isPlainObject(s) &&
        typeof s.id === "string" &&
        typeof s.kind === "string" &&
        typeof s.outputDir === "string",
    )
  );
}

export async function readManifest(runDir: string): Promise<RunManifest | undefined> {
  const file = join(runDir, MANIFEST_FILE);
  if (!existsSync(file)) return undefined;
  const data = await readJsonFile(file);
  if (!isRunManifest(data)) {
    throw new HippoError("INVALID_FORMAT", "not a hippo run manifest", {
      file,
      key: "format",
      expected: '"hippo-run/1" with stage records { id, kind, outputDir, ... }',
    });
  }
  return data;
}

export async function writeManifest(runDir: string, manifest: RunManifest): Promise<void> {
  manifest.updatedAt = new Date().toISOString();
  await writeJsonAtomic(join(runDir, MANIFEST_FILE), manifest);
}
