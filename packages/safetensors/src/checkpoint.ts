/**
 * The Hugging Face checkpoint layouts: one `model.safetensors`, or shards `model-00001-of-00003.safetensors`
 * listed by `model.safetensors.index.json` ({metadata: {total_size}, weight_map: {tensor: file}}). Any
 * `<prefix>.safetensors.index.json` works (e.g. adapters). Index paths are untrusted: each must be a plain
 * file name inside the folder.
 */

import { randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, realpath, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, sep } from "node:path";
import {
  describeValue,
  HippoError,
  isPlainObject,
  isTempName,
  readJsonFile,
  withAtomicFile,
  writeJsonAtomic,
} from "@hippocrates/core";
import { assertLittleEndian, bytesToFloat32, bytesToTyped } from "./convert.js";
import type { TypedTensorData } from "./dtypes.js";
import { DEFAULT_MAX_HEADER_BYTES, type TensorInfo } from "./header.js";
import { openSafetensors, type SafetensorsReader } from "./reader.js";
import {
  buildHeader,
  iterateEntries,
  type PlannedTensor,
  planTensor,
  type TensorEntries,
  writePlanned,
} from "./writer.js";

export interface CheckpointTensorInfo extends TensorInfo {
  /** File name (inside `dir`) that holds the tensor. */
  file: string;
}

export interface CheckpointReader {
  readonly dir: string;
  /** The index file, when the checkpoint is sharded. */
  readonly index: string | undefined;
  readonly metadata: Record<string, string>;
  readonly tensors: ReadonlyMap<string, CheckpointTensorInfo>;
  /** File names (inside `dir`) in first-use order. */
  readonly files: string[];
  readBytes(name: string): Promise<Uint8Array>;
  readFloat32(name: string): Promise<Float32Array>;
  readTyped(name: string): Promise<TypedTensorData>;
  close(): Promise<void>;
}

const SINGLE_SUFFIX = ".safetensors";
const INDEX_SUFFIX = ".safetensors.index.json";

async function kind(path: string): Promise<"file" | "dir" | undefined> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? "dir" : s.isFile() ? "file" : undefined;
  } catch {
    return undefined;
  }
}

/** Pick the checkpoint file in a folder the way transformers does: model.safetensors, then the index. */
async function locate(dir: string): Promise<string> {
  for (const name of ["model.safetensors", "model.safetensors.index.json"]) {
    if ((await kind(join(dir, name))) === "file") return join(dir, name);
  }
  const names = (await readdir(dir)).filter((n) => !isTempName(n)).sort();
  const indexes = names.filter((n) => n.endsWith(INDEX_SUFFIX));
  const singles = names.filter((n) => n.endsWith(SINGLE_SUFFIX) && !/-\d{5}-of-\d{5}\.safetensors$/.test(n));
  const candidates = indexes.length > 0 ? indexes : singles;
  if (candidates.length === 1) return join(dir, candidates[0]!);
  throw new HippoError(
    candidates.length === 0 ? "NOT_FOUND" : "INVALID_ARGUMENT",
    "cannot pick a safetensors checkpoint in folder",
    {
      file: dir,
      expected: "model.safetensors, a *.safetensors.index.json, or exactly one *.safetensors",
      got: candidates.length === 0 ? "none" : candidates.join(", "),
    },
  );
}

/** A weight_map value must name a regular file directly inside `dir` (no separators, no `..`, no escape). */
async function checkShardPath(
  dir: string,
  realDir: string,
  indexFile: string,
  tensor: string,
  value: unknown,
): Promise<string> {
  const fail = (code: "UNSAFE_PATH" | "INVALID_FORMAT" | "NOT_FOUND", reason: string, got: string) =>
    new HippoError(code, reason, {
      file: indexFile,
      key: `weight_map.${tensor}`,
      expected: "a file name inside the index's folder",
      got,
    });
  if (typeof value !== "string" || value.length === 0)
    throw fail("INVALID_FORMAT", "weight_map value must be a file name", describeValue(value));
  if (isAbsolute(value) || /^[a-zA-Z]:/.test(value))
    throw fail("UNSAFE_PATH", "absolute path in weight_map", JSON.stringify(value));
  if (
    value.includes("/") ||
    value.includes("\\") ||
    value.includes(sep) ||
    value.includes("\0") ||
    value === "." ||
    value === ".."
  ) {
    throw fail(
      "UNSAFE_PATH",
      "path separators or '..' in weight_map (shards must sit beside the index)",
      JSON.stringify(value),
    );
  }
  const full = join(dir, value);
  let real: string;
  try {
    real = await realpath(full);
  } catch {
    throw fail("NOT_FOUND", "shard file named by the index does not exist", JSON.stringify(value));
  }
  if (dirname(real) !== realDir)
    throw fail(
      "UNSAFE_PATH",
      "shard is a link that leaves the folder",
      `${JSON.stringify(value)} -> ${real}`,
    );
  if (!(await lstat(real)).isFile())
    throw fail("INVALID_FORMAT", "shard is not a regular file", JSON.stringify(value));
  return value;
}

export async function openCheckpoint(dirOrFile: string): Promise<CheckpointReader> {
  assertLittleEndian();
  const k = await kind(dirOrFile);
  if (k === undefined)
    throw new HippoError("NOT_FOUND", "no such checkpoint file or folder", { file: dirOrFile });
  const path = k === "dir" ? await locate(dirOrFile) : dirOrFile;
  const dir = dirname(path);
  if (path.endsWith(".json")) return openIndexed(dir, path);
  const reader = await openSafetensors(path);
  const file = basename(path);
  const tensors = new Map<string, CheckpointTensorInfo>();
  for (const [name, info] of reader.tensors) tensors.set(name, { ...info, file });
  return {
    dir,
    index: undefined,
    metadata: reader.metadata,
    tensors,
    files: [file],
    readBytes: (n) => reader.readBytes(n),
    readFloat32: (n) => reader.readFloat32(n),
    readTyped: (n) => reader.readTyped(n),
    close: () => reader.close(),
  };
}

/** An index is read whole, so it gets the same bound as a safetensors header. */
const MAX_INDEX_BYTES = DEFAULT_MAX_HEADER_BYTES;

async function openIndexed(dir: string, indexFile: string): Promise<CheckpointReader> {
  const { size } = await stat(indexFile);
  if (size > MAX_INDEX_BYTES) {
    throw new HippoError("INVALID_FORMAT", "index file too large", {
      file: indexFile,
      expected: `<= ${MAX_INDEX_BYTES} bytes`,
      got: `${size} bytes`,
    });
  }
  const json = await readJsonFile(indexFile);
  if (!isPlainObject(json)) {
    throw new HippoError("INVALID_FORMAT", "index must be a JSON object", {
      file: indexFile,
      expected: "object",
      got: describeValue(json),
    });
  }
  const weightMap = json.weight_map;
  if (!isPlainObject(weightMap)) {
    throw new HippoError("INVALID_FORMAT", "index has no weight_map object", {
      file: indexFile,
      key: "weight_map",
      expected: "object {tensor: file}",
      got: describeValue(weightMap),
    });
  }
  const indexMeta = Object.create(null) as Record<string, string>;
  if (json.metadata !== undefined && json.metadata !== null) {
    if (!isPlainObject(json.metadata)) {
      throw new HippoError("INVALID_FORMAT", "index metadata must be an object", {
        file: indexFile,
        key: "metadata",
        got: describeValue(json.metadata),
      });
    }
    for (const [key, v] of Object.entries(json.metadata))
      indexMeta[key] = typeof v === "string" ? v : JSON.stringify(v);
  }
  const realDir = await realpath(dir);
  const fileOf = new Map<string, string>();
  const files: string[] = [];
  for (const [tensor, value] of Object.entries(weightMap)) {
    const file = await checkShardPath(dir, realDir, indexFile, tensor, value);
    fileOf.set(tensor, file);
    if (!files.includes(file)) files.push(file);
  }
  const readers = new Map<string, SafetensorsReader>();
  try {
    for (const f of files) readers.set(f, await openSafetensors(join(dir, f)));
  } catch (e) {
    await Promise.all([...readers.values()].map((r) => r.close()));
    throw e;
  }
  const tensors = new Map<string, CheckpointTensorInfo>();
  for (const [tensor, file] of fileOf) {
    const info = readers.get(file)!.tensors.get(tensor);
    if (!info) {
      await Promise.all([...readers.values()].map((r) => r.close()));
      throw new HippoError("INVALID_FORMAT", "index names a tensor its shard does not contain", {
        file: indexFile,
        key: `weight_map.${tensor}`,
        expected: `tensor in ${file}`,
        got: "absent",
      });
    }
    tensors.set(tensor, { ...info, file });
  }
  const readerFor = (name: string): SafetensorsReader => {
    const file = fileOf.get(name);
    if (file === undefined)
      throw new HippoError("NOT_FOUND", "no such tensor in checkpoint", { file: indexFile, key: name });
    return readers.get(file)!;
  };
  return {
    dir,
    index: indexFile,
    metadata: indexMeta,
    tensors,
    files,
    readBytes: (n) => readerFor(n).readBytes(n),
    async readFloat32(n) {
      const bytes = await readerFor(n).readBytes(n);
      return bytesToFloat32(tensors.get(n)!.dtype, bytes);
    },
    async readTyped(n) {
      const bytes = await readerFor(n).readBytes(n);
      return bytesToTyped(tensors.get(n)!.dtype, bytes);
    },
    async close() {
      await Promise.all([...readers.values()].map((r) => r.close()));
    },
  };
}

export interface ShardOptions {
  /** Start a new shard when the next tensor would push a shard past this many data bytes (default 5 GB, as HF). */
  maxShardBytes?: number;
  /** File name prefix (default "model"). */
  prefix?: string;
  /** `__metadata__` of every file, e.g. {format: "pt"}. */
  metadata?: Record<string, string>;
}

export interface ShardedWriteResult {
  /** File names inside `dir`, in order. */
  files: string[];
  /** Index file name, when more than one shard was written. */
  index?: string;
}

export const DEFAULT_MAX_SHARD_BYTES = 5_000_000_000;

function shardName(prefix: string, i: number, n: number): string {
  const w = Math.max(5, String(n).length);
  return `${prefix}-${String(i).padStart(w, "0")}-of-${String(n).padStart(w, "0")}.safetensors`;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * Write tensors as HF does: a single `<prefix>.safetensors` when everything fits one shard, else shards
 * `<prefix>-0000i-of-0000n.safetensors` plus `<prefix>.safetensors.index.json`. Tensors are consumed from a
 * (async) iterable in order; only the current shard's entries are held (and with function data, only one
 * tensor's bytes at a time). Each shard is written to a temporary name and renamed once the shard count is
 * known; the index is written last, and stale shards of an earlier save with the same prefix are removed.
 */
export async function writeShardedSafetensors(
  dir: string,
  tensors: TensorEntries,
  options: ShardOptions = {},
): Promise<ShardedWriteResult> {
  assertLittleEndian();
  const prefix = options.prefix ?? "model";
  const maxShardBytes = options.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  if (!/^[A-Za-z0-9._-]+$/.test(prefix) || prefix.startsWith(".")) {
    throw new HippoError("INVALID_ARGUMENT", "invalid shard prefix", {
      key: "prefix",
      expected: "a plain file name",
      got: JSON.stringify(prefix),
    });
  }
  if (!(maxShardBytes > 0)) {
    throw new HippoError("INVALID_ARGUMENT", "maxShardBytes must be positive", {
      key: "maxShardBytes",
      got: String(maxShardBytes),
    });
  }
  await mkdir(dir, { recursive: true });
  const run = `${process.pid}-${randomBytes(4).toString("hex")}`;
  const staged: { tmp: string; plans: PlannedTensor[] }[] = [];
  const names = new Set<string>();
  let current: PlannedTensor[] = [];
  let currentBytes = 0;
  let totalBytes = 0;

  const flush = async (): Promise<void> => {
    const tmp = join(dir, `.${prefix}-shard${staged.length + 1}.tmp-${run}.safetensors`);
    const plans = current;
    await withAtomicFile(tmp, (h) => writePlanned(h, tmp, plans, options.metadata));
    // Keep only names and sizes for the index; drop the data references so they can be collected.
    staged.push({
      tmp,
      plans: plans.map((p) => ({ ...p, tensor: { ...p.tensor, data: new Uint8Array(0) } })),
    });
    current = [];
    currentBytes = 0;
  };

  try {
    for await (const [name, t] of iterateEntries(tensors)) {
      const plan = planTensor(join(dir, prefix), name, t);
      if (names.has(name)) {
        throw new HippoError("INVALID_ARGUMENT", "duplicate tensor name", {
          file: dir,
          key: name,
          expected: "unique names",
        });
      }
      names.add(name);
      if (current.length > 0 && currentBytes + plan.byteLength > maxShardBytes) await flush();
      current.push(plan);
      currentBytes += plan.byteLength;
      totalBytes += plan.byteLength;
    }
    buildHeader(current, options.metadata, dir); // validates metadata even when nothing was flushed yet
    if (current.length > 0 || staged.length === 0) await flush();

    const n = staged.length;
    const files = staged.map((_, i) => (n === 1 ? `${prefix}.safetensors` : shardName(prefix, i + 1, n)));
    for (const [i, s] of staged.entries()) await rename(s.tmp, join(dir, files[i]!));
    const indexName = `${prefix}${INDEX_SUFFIX}`;
    if (n > 1) {
      const weightMap = Object.create(null) as Record<string, string>;
      for (const [i, s] of staged.entries()) for (const p of s.plans) weightMap[p.name] = files[i]!;
      await writeJsonAtomic(join(dir, indexName), {
        metadata: { total_size: totalBytes },
        weight_map: weightMap,
      });
    }
    // Remove what an earlier save with this prefix left and the new layout does not use.
    const shardPattern = new RegExp(`^${escapeRegExp(prefix)}-\\d{5,}-of-\\d{5,}\\.safetensors$`);
    for (const entry of await readdir(dir)) {
      const stale =
        (shardPattern.test(entry) && !files.includes(entry)) ||
        (n > 1 && entry === `${prefix}.safetensors`) ||
        (n === 1 && entry === indexName);
      if (stale) await rm(join(dir, entry), { force: true });
    }
    return n > 1 ? { files, index: indexName } : { files };
  } catch (e) {
    await Promise.all(staged.map((s) => rm(s.tmp, { force: true })));
    throw e;
  }
}
