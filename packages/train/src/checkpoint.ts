/**
 * Checkpoints: everything a run needs to continue exactly where it stopped, in files the Python tools read.
 *
 *   <outputDir>/checkpoint-<step>/
 *     trainable.safetensors   trainable weights (F32) under the names the stage gives them, in the layout those
 *                             names promise: PEFT's `lora_A.weight` [r, in] / `lora_B.weight` [out, r], HF linear
 *                             weights [out, in] (the caller says which variables are held transposed in memory)
 *     optimizer.safetensors   AdamW moments `exp_avg.<name>` / `exp_avg_sq.<name>`, in the same layout
 *     trainer_state.json      transformers' TrainerState, exactly its fields (TrainerState.load_from_json reads it)
 *     ...                     whatever the stage adds (e.g. a loadable PEFT adapter)
 *     hippo_state.json        ours: the stage's facts (stage, base model), `resume` (optimizer step, data RNG
 *                             state, epoch and position, tokens seen, summed loss, settings fingerprint) and
 *                             `files` (byte size and sha256 of every other file of the folder, checked on load)
 *   <outputDir>/latest        the name of the newest complete checkpoint, written last
 *
 * Each folder is built in a temporary folder and renamed into place (core's writeDirAtomic), and `latest` is
 * only updated after that, so a crash leaves either the previous checkpoint or the new one. Temporary folders
 * (`.checkpoint-N.tmp-*`) are never read, and a folder whose files do not match their record is rejected.
 */
import { createHash } from "node:crypto";
import { readdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  describeEntries,
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

/** Our own facts beside transformers' trainer_state.json (checkpoints and the output folder). */
export const HIPPO_STATE = "hippo_state.json";
export const TRAINER_STATE = "trainer_state.json";

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
  /** Sum of the training loss of every step so far, in step order (the run's train_loss is lossSum / steps). */
  lossSum: number;
  logHistory: LogEntry[];
  /** Extra JSON state of the stage (e.g. its config), checked by the caller. */
  stage?: Record<string, unknown>;
}

export interface CheckpointParams {
  variables: readonly tf.Variable[];
  /** Stable names for the variables (file keys). */
  names: readonly string[];
  /**
   * Per variable: held in memory as the transpose of the layout its name promises (a 2-D [a, b] variable saved
   * as [b, a]). @hippocrates/model keeps LoRA A [in, r], B [r, out] and linear weights [in, out], while PEFT and
   * HF files hold [r, in], [out, r] and [out, in]. Default: no variable is transposed.
   */
  transposed?: readonly boolean[];
  optimizer: AdamW;
}

/**
 * transformers' TrainerState, with exactly its fields: `TrainerState.load_from_json` is `cls(**json.loads(text))`,
 * so any other top-level key is a TypeError in Python. Fields as in huggingface/transformers
 * src/transformers/trainer_callback.py (main, the v4.5x/v5 line with `best_global_step`).
 */
export interface TrainerStateJson {
  epoch: number;
  global_step: number;
  max_steps: number;
  logging_steps: number;
  eval_steps: number;
  save_steps: number;
  train_batch_size: number;
  num_train_epochs: number;
  num_input_tokens_seen: number;
  total_flos: number;
  log_history: LogEntry[];
  best_metric: number | null;
  best_global_step: number | null;
  best_model_checkpoint: string | null;
  is_local_process_zero: boolean;
  is_world_process_zero: boolean;
  is_hyper_param_search: boolean;
  trial_name: string | null;
  trial_params: Record<string, unknown> | null;
  stateful_callbacks: Record<string, unknown>;
}

/** The TrainerState of a run at `state` (no FLOP count: total_flos stays 0, as for a model that has none). */
export function trainerStateJson(
  state: Pick<ResumeState, "globalStep" | "tokensSeen" | "logHistory">,
  run: {
    epoch: number;
    maxSteps: number;
    loggingSteps: number;
    evalSteps: number;
    saveSteps: number;
    trainBatchSize: number;
    numTrainEpochs: number;
  },
): TrainerStateJson {
  return {
    epoch: run.epoch,
    global_step: state.globalStep,
    max_steps: run.maxSteps,
    logging_steps: run.loggingSteps,
    eval_steps: run.evalSteps,
    save_steps: run.saveSteps,
    train_batch_size: run.trainBatchSize,
    num_train_epochs: run.numTrainEpochs,
    num_input_tokens_seen: state.tokensSeen,
    total_flos: 0,
    log_history: state.logHistory,
    best_metric: null,
    best_global_step: null,
    best_model_checkpoint: null,
    is_local_process_zero: true,
    is_world_process_zero: true,
    is_hyper_param_search: false,
    trial_name: null,
    trial_params: null,
    stateful_callbacks: {},
  };
}

const CHECKPOINT_RE = /^checkpoint-(\d+)$/;

async function sha256File(path: string): Promise<{ bytes: number; sha256: string }> {
  const data = await readFile(path);
  return { bytes: data.length, sha256: createHash("sha256").update(data).digest("hex") };
}

/** A 2-D float32 matrix [rows, cols] transposed bit for bit (integer view: no float passes through a number). */
function transposeBits(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(src.length);
  const s = new Uint32Array(src.buffer, src.byteOffset, src.length);
  const o = new Uint32Array(out.buffer);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) o[c * rows + r] = s[r * cols + c] as number;
  return out;
}

function fileLayout(shape: readonly number[], transposed: boolean | undefined): number[] {
  if (!transposed) return [...shape];
  if (shape.length !== 2)
    throw new HippoError("INVALID_ARGUMENT", "only a 2-D variable can be held transposed", {
      expected: "[rows, cols]",
      got: `[${shape.join(", ")}]`,
    });
  return [shape[1] as number, shape[0] as number];
}

/** Memory -> file layout (or back, with the file shape): a copy, transposed when asked. */
function toLayout(
  data: Float32Array,
  shape: readonly number[],
  transposed: boolean | undefined,
): Float32Array {
  return transposed ? transposeBits(data, shape[0] as number, shape[1] as number) : data;
}

/** Whether a folder written by saveCheckpoint may be replaced (the same step saved again after a resume). */
async function mayReplaceCheckpoint(dir: string, entries: string[]): Promise<void> {
  if (entries.includes(HIPPO_STATE) && entries.includes(TRAINER_STATE)) return;
  throw new HippoError(
    "INVALID_ARGUMENT",
    `refusing to replace this folder with a checkpoint: it holds ${describeEntries(entries)} and no ${HIPPO_STATE}`,
    { file: dir },
  );
}

export async function saveCheckpoint(
  outputDir: string,
  params: CheckpointParams,
  state: ResumeState,
  options: {
    trainerState: TrainerStateJson;
    /** The stage's facts (stage name, base model, ...), kept in hippo_state.json. */
    facts?: Record<string, unknown>;
    saveExtra?: (dir: string) => Promise<void>;
    keepLast?: number;
  },
): Promise<string> {
  const name = `checkpoint-${state.globalStep}`;
  const dir = join(outputDir, name);
  const t = params.transposed ?? [];
  const weights = await Promise.all(
    params.variables.map(async (v, i) => ({
      name: params.names[i] as string,
      shape: fileLayout(v.shape, t[i]),
      data: toLayout((await v.data()) as Float32Array, v.shape, t[i]),
    })),
  );
  const opt = await params.optimizer.exportState();
  await writeDirAtomic(
    dir,
    async (tmp) => {
      await writeF32Safetensors(join(tmp, "trainable.safetensors"), weights);
      const moments = (prefix: string, values: Float32Array[]) =>
        weights.map((w, i) => ({
          name: `${prefix}.${w.name}`,
          shape: w.shape,
          data: toLayout(values[i] as Float32Array, params.variables[i]?.shape ?? [], t[i]),
        }));
      await writeF32Safetensors(join(tmp, "optimizer.safetensors"), [
        ...moments("exp_avg", opt.m),
        ...moments("exp_avg_sq", opt.v),
      ]);
      await options.saveExtra?.(tmp);
      await writeJsonAtomic(join(tmp, TRAINER_STATE), options.trainerState);
      const files: Record<string, { bytes: number; sha256: string }> = {};
      for (const f of (await readdir(tmp)).sort()) files[f] = await sha256File(join(tmp, f));
      const { logHistory: _inTrainerState, ...resume } = state;
      await writeJsonAtomic(join(tmp, HIPPO_STATE), {
        ...options.facts,
        resume: { ...resume, optimizerStep: opt.step },
        files,
      });
    },
    { mayReplace: mayReplaceCheckpoint },
  );
  await writeFileAtomic(join(outputDir, "latest"), `${name}\n`);
  if (options.keepLast !== undefined && options.keepLast > 0)
    await pruneCheckpoints(outputDir, options.keepLast);
  return dir;
}

async function checkpointNames(outputDir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(outputDir);
  } catch {
    return [];
  }
  return names
    .filter((n) => !isTempName(n) && CHECKPOINT_RE.test(n))
    .sort((a, b) => Number(CHECKPOINT_RE.exec(b)?.[1]) - Number(CHECKPOINT_RE.exec(a)?.[1]));
}

async function pruneCheckpoints(outputDir: string, keep: number): Promise<void> {
  for (const n of (await checkpointNames(outputDir)).slice(keep))
    await rm(join(outputDir, n), { recursive: true, force: true });
}

/** Remove every checkpoint folder and the `latest` pointer (a run that the user asked to restart). */
export async function removeCheckpoints(outputDir: string): Promise<string[]> {
  const names = await checkpointNames(outputDir);
  for (const n of names) await rm(join(outputDir, n), { recursive: true, force: true });
  await rm(join(outputDir, "latest"), { force: true });
  return names;
}

interface CheckedCheckpoint {
  dir: string;
  trainerState: Record<string, unknown>;
  /** The stage's facts recorded beside the resume state. */
  facts: Record<string, unknown>;
  resume: ResumeState & { optimizerStep: number };
}

/** Read and verify one checkpoint folder (sizes, hashes, state fields); throws HippoError when it is not whole. */
export async function verifyCheckpoint(dir: string): Promise<CheckedCheckpoint> {
  const file = join(dir, HIPPO_STATE);
  let hs: unknown;
  try {
    hs = await readJsonFile(file);
  } catch (e) {
    if (!(await stat(file).catch(() => undefined)))
      throw new HippoError("INVALID_FORMAT", `not a checkpoint of this version: no ${HIPPO_STATE}`, {
        file: dir,
        cause: e,
      });
    throw e;
  }
  if (!isPlainObject(hs) || !isPlainObject(hs.resume) || !isPlainObject(hs.files))
    throw new HippoError("INVALID_FORMAT", "not a training checkpoint", {
      file,
      expected: "resume and files entries",
    });
  for (const f of ["trainable.safetensors", "optimizer.safetensors", TRAINER_STATE])
    if (!isPlainObject(hs.files[f]))
      throw new HippoError("INVALID_FORMAT", "file missing from the checkpoint record", {
        file,
        key: `files.${f}`,
      });
  for (const [f, rec] of Object.entries(hs.files)) {
    if (!isPlainObject(rec) || f.includes("/") || f.startsWith("."))
      throw new HippoError("INVALID_FORMAT", "bad file record", { file, key: `files.${f}` });
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
  const ts = await readJsonFile(join(dir, TRAINER_STATE));
  if (!isPlainObject(ts) || !Array.isArray(ts.log_history))
    throw new HippoError("INVALID_FORMAT", "log_history must be an array", {
      file: join(dir, TRAINER_STATE),
      key: "log_history",
    });
  const r = hs.resume;
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
  if (typeof r.lossSum !== "number" || !Number.isFinite(r.lossSum))
    throw new HippoError("INVALID_FORMAT", "bad resume field", {
      file,
      key: "resume.lossSum",
      expected: "a finite number",
      got: String(r.lossSum),
    });
  const resume = {
    globalStep: int("globalStep"),
    epoch: int("epoch"),
    position: int("position"),
    tokensSeen: int("tokensSeen"),
    optimizerStep: int("optimizerStep"),
    lossSum: r.lossSum,
    dataRngState: {
      kind: "xoshiro128**",
      s: (rng.s as number[]).map(Number) as [number, number, number, number],
    } as RngState,
    logHistory: ts.log_history as LogEntry[],
    stage: isPlainObject(r.stage) ? r.stage : undefined,
  };
  const { resume: _r, files: _f, ...facts } = hs;
  return { dir, trainerState: ts, facts, resume };
}

export interface CheckpointScan {
  /** The newest checkpoint that verifies, if any. */
  dir: string | undefined;
  /** Checkpoint folders tried before it (or all of them, when none verifies), newest first, with the reason. */
  rejected: { dir: string; reason: string }[];
}

/**
 * Look for the newest whole checkpoint of `outputDir`: the one `latest` names, or, when `latest` is missing or
 * names a folder that does not verify, the highest-numbered `checkpoint-N` that does. Temporary folders are
 * skipped; every folder tried and rejected is returned with its reason, so the caller can say so.
 */
export async function scanCheckpoints(outputDir: string): Promise<CheckpointScan> {
  const candidates: string[] = [];
  try {
    const latest = (await readFile(join(outputDir, "latest"), "utf8")).trim();
    if (CHECKPOINT_RE.test(latest)) candidates.push(latest);
  } catch {
    // no pointer yet
  }
  const rejected: CheckpointScan["rejected"] = [];
  for (const n of new Set([...candidates, ...(await checkpointNames(outputDir))])) {
    const dir = join(outputDir, n);
    try {
      if (!(await stat(dir)).isDirectory()) throw new HippoError("INVALID_FORMAT", "not a folder");
      await verifyCheckpoint(dir);
      return { dir, rejected };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") continue; // `latest` names a pruned folder
      rejected.push({ dir, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  return { dir: undefined, rejected };
}

/** The newest whole checkpoint of `outputDir` (see scanCheckpoints), or undefined. */
export async function findLatestCheckpoint(outputDir: string): Promise<string | undefined> {
  return (await scanCheckpoints(outputDir)).dir;
}

/** Load weights and optimizer state of a verified checkpoint into `params`; returns the resume state. */
export async function loadCheckpoint(
  dir: string,
  params: CheckpointParams,
): Promise<ResumeState & { trainerState: Record<string, unknown>; facts: Record<string, unknown> }> {
  const { resume, trainerState, facts } = await verifyCheckpoint(dir);
  const weights = await readF32Safetensors(join(dir, "trainable.safetensors"));
  const opt = await readF32Safetensors(join(dir, "optimizer.safetensors"));
  const t = params.transposed ?? [];
  const m: Float32Array[] = [];
  const v: Float32Array[] = [];
  const values: Float32Array[] = [];
  params.variables.forEach((variable, i) => {
    const name = params.names[i] as string;
    const file = join(dir, "trainable.safetensors");
    const shape = fileLayout(variable.shape, t[i]);
    const w = weights.get(name);
    if (!w)
      throw new HippoError("INVALID_FORMAT", "checkpoint lacks a trainable tensor", { file, key: name });
    if (w.shape.join(",") !== shape.join(","))
      throw new HippoError("INVALID_FORMAT", "checkpoint tensor has another shape", {
        file,
        key: name,
        expected: `[${shape}]`,
        got: `[${w.shape}]`,
      });
    const mi = opt.get(`exp_avg.${name}`);
    const vi = opt.get(`exp_avg_sq.${name}`);
    if (!mi || !vi || mi.shape.join(",") !== shape.join(",") || vi.shape.join(",") !== shape.join(","))
      throw new HippoError("INVALID_FORMAT", "checkpoint lacks optimizer moments of this shape", {
        file: join(dir, "optimizer.safetensors"),
        key: name,
        expected: `exp_avg.${name} and exp_avg_sq.${name} [${shape}]`,
      });
    values.push(toLayout(w.data, shape, t[i]));
    m.push(toLayout(mi.data, shape, t[i]));
    v.push(toLayout(vi.data, shape, t[i]));
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
  return { ...resume, trainerState, facts };
}
