/**
 * Checkpoints: everything a run needs to continue exactly where it stopped.
 *
 *   <outputDir>/checkpoint-<step>/
 *     trainable.safetensors   trainable weights (F32), keyed by the names the stage gives (PEFT keys for LoRA)
 *     optimizer.safetensors   AdamW moments `exp_avg.<name>` / `exp_avg_sq.<name>`
 *     trainer_state.json      HF-like state (global_step, log_history, ...) plus `resume` (optimizer step, data
 *                             RNG state, epoch and position, tokens seen) and `files` (byte size and sha256 of
 *                             each file above, checked on load)
 *     ...                     whatever the stage adds (e.g. a loadable PEFT adapter)
 *   <outputDir>/latest        the name of the newest complete checkpoint, written last
 *
 * Each folder is built in a temporary folder and renamed into place (core's writeDirAtomic), and `latest` is
 * only updated after that, so a crash leaves either the previous checkpoint or the new one. Temporary folders
 * (`.checkpoint-N.tmp-*`) are never read, and a folder whose files do not match their recorded sizes and hashes
 * is rejected.
 */
import { createHash } from "node:crypto";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  HippoError,
  isPlainObject,
  isTempName,
  type RngState,
  readJsonFile,
  writeDirAtomic,
  writeFileAtomic,
  writeJsonAtomic,
} from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import type { AdamW } from "./adamw.js";
import { readF32Safetensors, writeF32Safetensors } from "./tensorfile.js";

export type LogEntry = Record<string, number>;

export interface ResumeState {
  /** Optimizer steps done. */
  globalStep: number;
  /** 0-based epoch the next step belongs to. */
  epoch: number;
  /** Examples of that epoch already consumed. */
  position: number;
  /** State of the data-order RNG before this epoch's shuffle (the shuffle is replayed on resume). */
  dataRngState: RngState;
  tokensSeen: number;
  logHistory: LogEntry[];
  /** Extra JSON state of the stage (e.g. its config), checked by the caller. */
  stage?: Record<string, unknown>;
}

export interface CheckpointParams {
  variables: readonly tf.Variable[];
  /** Stable names for the variables (file keys). */
  names: readonly string[];
  optimizer: AdamW;
}

const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

async function sha256File(path: string): Promise<{ bytes: number; sha256: string }> {
  const data = await readFile(path);
  return { bytes: data.length, sha256: createHash("sha256").update(data).digest("hex") };
}

export async function saveCheckpoint(
  outputDir: string,
  params: CheckpointParams,
  state: ResumeState,
  options: {
    trainerState?: Record<string, unknown>;
    saveExtra?: (dir: string) => Promise<void>;
    keepLast?: number;
  } = {},
): Promise<string> {
  const name = `checkpoint-${state.globalStep}`;
  const dir = join(outputDir, name);
  const weights = await Promise.all(
    params.variables.map(async (v, i) => ({
      name: params.names[i] as string,
      shape: v.shape,
      data: (await v.data()) as Float32Array,
    })),
  );
  const opt = await params.optimizer.exportState();
  await writeDirAtomic(dir, async (tmp) => {
    await writeF32Safetensors(join(tmp, "trainable.safetensors"), weights);
    await writeF32Safetensors(join(tmp, "optimizer.safetensors"), [
      ...weights.map((w, i) => ({
        name: `exp_avg.${w.name}`,
        shape: w.shape,
        data: opt.m[i] as Float32Array,
      })),
      ...weights.map((w, i) => ({
        name: `exp_avg_sq.${w.name}`,
        shape: w.shape,
        data: opt.v[i] as Float32Array,
      })),
    ]);
    await options.saveExtra?.(tmp);
    const files: Record<string, { bytes: number; sha256: string }> = {};
    for (const f of ["trainable.safetensors", "optimizer.safetensors"])
      files[f] = await sha256File(join(tmp, f));
    await writeJsonAtomic(join(tmp, "trainer_state.json"), {
      ...options.trainerState,
      global_step: state.globalStep,
      log_history: state.logHistory,
      resume: { ...state, optimizerStep: opt.step, logHistory: undefined },
      files,
    });
  });
  await writeFileAtomic(join(outputDir, "latest"), `${name}\n`);
  if (options.keepLast !== undefined && options.keepLast > 0)
    await pruneCheckpoints(outputDir, options.keepLast);
  return dir;
}

async function pruneCheckpoints(outputDir: string, keep: number): Promise<void> {
  const steps = (await readdir(outputDir))
    .map((n) => CHECKPOINT_RE.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => Number(m[1]))
    .sort((a, b) => b - a);
  for (const s of steps.slice(keep))
    await rm(join(outputDir, `checkpoint-${s}`), { recursive: true, force: true });
}

interface CheckedCheckpoint {
  dir: string;
  trainerState: Record<string, unknown>;
  resume: ResumeState & { optimizerStep: number };
}

/** Read and verify one checkpoint folder (sizes, hashes, state fields); throws HippoError when it is not whole. */
export async function verifyCheckpoint(dir: string): Promise<CheckedCheckpoint> {
  const file = join(dir, "trainer_state.json");
  const ts = await readJsonFile(file);
  if (!isPlainObject(ts) || !isPlainObject(ts.resume) || !isPlainObject(ts.files))
    throw new HippoError("INVALID_FORMAT", "not a training checkpoint", {
      file,
      expected: "resume and files entries",
    });
  for (const f of ["trainable.safetensors", "optimizer.safetensors"]) {
    const rec = ts.files[f];
    if (!isPlainObject(rec))
      throw new HippoError("INVALID_FORMAT", "file missing from the checkpoint record", {
        file,
        key: `files.${f}`,
      });
    let actual: { bytes: number; sha256: string };
    try {
      actual = await sha256File(join(dir, f));
    } catch (e) {
      throw new HippoError("INVALID_FORMAT", "checkpoint file is missing", { file: join(dir, f), cause: e });
    }
    if (actual.bytes !== rec.bytes || actual.sha256 !== rec.sha256)
      throw new HippoError(
        "INVALID_FORMAT",
        "checkpoint file does not match its recorded size/hash (incomplete write?)",
        {
          file: join(dir, f),
          expected: `${String(rec.bytes)} bytes ${String(rec.sha256)}`,
          got: `${actual.bytes} bytes ${actual.sha256}`,
        },
      );
  }
  const r = ts.resume;
  const int = (k: string) => {
    const v = r[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0)
      throw new HippoError("INVALID_FORMAT", "bad resume field", {
        file,
        key: `resume.${k}`,
        expected: "non-negative integer",
        got: String(v),
      });
    return v;
  };
  const rng = r.dataRngState;
  if (!isPlainObject(rng) || rng.kind !== "xoshiro128**" || !Array.isArray(rng.s) || rng.s.length !== 4)
    throw new HippoError("INVALID_FORMAT", "bad data RNG state", { file, key: "resume.dataRngState" });
  if (!Array.isArray(ts.log_history))
    throw new HippoError("INVALID_FORMAT", "log_history must be an array", { file, key: "log_history" });
  const resume = {
    globalStep: int("globalStep"),
    epoch: int("epoch"),
    position: int("position"),
    tokensSeen: int("tokensSeen"),
    optimizerStep: int("optimizerStep"),
    dataRngState: {
      kind: "xoshiro128**",
      s: (rng.s as number[]).map(Number) as [number, number, number, number],
    } as RngState,
    logHistory: ts.log_history as LogEntry[],
    stage: isPlainObject(r.stage) ? r.stage : undefined,
  };
  return { dir, trainerState: ts, resume };
}

/**
 * The newest whole checkpoint of `outputDir`: the one `latest` names, or, when `latest` is missing or names a
 * folder that does not verify, the highest-numbered `checkpoint-N` that does. Temporary folders are skipped.
 */
export async function findLatestCheckpoint(outputDir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(outputDir);
  } catch {
    return undefined;
  }
  const candidates: string[] = [];
  try {
    const latest = (await readFile(join(outputDir, "latest"), "utf8")).trim();
    if (CHECKPOINT_RE.test(latest)) candidates.push(latest);
  } catch {
    // no pointer yet
  }
  const numbered = names
    .filter((n) => !isTempName(n) && CHECKPOINT_RE.test(n))
    .sort((a, b) => Number(CHECKPOINT_RE.exec(b)?.[1]) - Number(CHECKPOINT_RE.exec(a)?.[1]));
  for (const n of [...candidates, ...numbered]) {
    const dir = join(outputDir, n);
    try {
      if (!(await stat(dir)).isDirectory()) continue;
      await verifyCheckpoint(dir);
      return dir;
    } catch {
      // incomplete or foreign: try the next one
    }
  }
  return undefined;
}

/** Load weights and optimizer state of a verified checkpoint into `params`; returns the resume state. */
export async function loadCheckpoint(
  dir: string,
  params: CheckpointParams,
): Promise<ResumeState & { trainerState: Record<string, unknown> }> {
  const { resume, trainerState } = await verifyCheckpoint(dir);
  const weights = await readF32Safetensors(join(dir, "trainable.safetensors"));
  const opt = await readF32Safetensors(join(dir, "optimizer.safetensors"));
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  const values: Float32Array[] = [];
  params.variables.forEach((variable, i) => {
    const name = params.names[i] as string;
    const file = join(dir, "trainable.safetensors");
    const w = weights.get(name);
    if (!w)
      throw new HippoError("INVALID_FORMAT", "checkpoint lacks a trainable tensor", { file, key: name });
    if (w.shape.join(",") !== variable.shape.join(","))
      throw new HippoError("INVALID_FORMAT", "checkpoint tensor has another shape", {
        file,
        key: name,
        expected: `[${variable.shape}]`,
        got: `[${w.shape}]`,
      });
    const mi = opt.get(`exp_avg.${name}`);
    const vi = opt.get(`exp_avg_sq.${name}`);
    if (!mi || !vi)
      throw new HippoError("INVALID_FORMAT", "checkpoint lacks optimizer moments", {
        file: join(dir, "optimizer.safetensors"),
        key: name,
      });
    values.push(w.data);
    m.push(mi.data);
    v.push(vi.data);
  });
  if (weights.size !== params.variables.length)
    throw new HippoError("INVALID_FORMAT", "checkpoint holds other trainable tensors than this run", {
      file: join(dir, "trainable.safetensors"),
      expected: String(params.variables.length),
      got: String(weights.size),
    });
  params.optimizer.importState({ step: resume.optimizerStep, m, v });
  params.variables.forEach((variable, i) => {
    const t = tf.tensor(values[i] as Float32Array, variable.shape, "float32");
    variable.assign(t);
    t.dispose();
  });
  return { ...resume, trainerState };
}
