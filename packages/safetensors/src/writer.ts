/**
 * Atomic safetensors writer. The header (dtypes, shapes, offsets) is known before any data, so tensors are
 * written one after another straight to the file handle: nothing is concatenated in memory, and a tensor's
 * data may be a function that produces it only when its turn comes.
 */

import { type FileHandle, mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { describeValue, HippoError, withAtomicFile } from "@hippocrates/core";
import { assertLittleEndian } from "./convert.js";
import { type DType, dtypeByteSize, float32ToBF16, float32ToF16, isDType } from "./dtypes.js";
import { METADATA_KEY, metadataEntries } from "./header.js";

export type TensorData = ArrayBufferView;

export interface TensorToWrite {
  dtype: DType;
  shape: number[];
  /**
   * Raw bytes (Uint8Array) or the dtype's typed array (F16/BF16: Uint16Array of bits, I64: BigInt64Array).
   * A Float32Array is converted when dtype is F16, BF16 (round-to-nearest-even) or F64. A function is called
   * only when the tensor is written, so large models can be saved without holding every tensor at once.
   */
  data: TensorData | (() => TensorData | Promise<TensorData>);
}

export type TensorEntries =
  | Iterable<[string, TensorToWrite]>
  | AsyncIterable<[string, TensorToWrite]>
  | Record<string, TensorToWrite>;

/** A validated entry: its size is known, its data may still be pending. */
export interface PlannedTensor {
  name: string;
  tensor: TensorToWrite;
  byteLength: number;
}

function badArg(file: string, reason: string, key: string, expected: string, got: string): HippoError {
  return new HippoError("INVALID_ARGUMENT", reason, { file, key, expected, got });
}

export function isIterableEntries(v: unknown): v is Iterable<[string, TensorToWrite]> {
  return v !== null && typeof v === "object" && Symbol.iterator in v;
}

/** Entries of any accepted input form, in order (a Record keeps its own-key order). */
export async function* iterateEntries(tensors: TensorEntries): AsyncGenerator<[string, TensorToWrite]> {
  if (
    isIterableEntries(tensors) ||
    (tensors !== null && typeof tensors === "object" && Symbol.asyncIterator in tensors)
  ) {
    yield* tensors as AsyncIterable<[string, TensorToWrite]>;
    return;
  }
  for (const name of Object.keys(tensors)) yield [name, (tensors as Record<string, TensorToWrite>)[name]!];
}

/** Check name, dtype and shape and compute the byte length, before any byte is written. */
export function planTensor(file: string, name: string, tensor: TensorToWrite): PlannedTensor {
  if (typeof name !== "string" || name === METADATA_KEY) {
    throw badArg(
      file,
      "invalid tensor name",
      String(name),
      `a string other than ${METADATA_KEY}`,
      describeValue(name),
    );
  }
  if (tensor === null || typeof tensor !== "object") {
    throw badArg(file, "tensor must be {dtype, shape, data}", name, "object", describeValue(tensor));
  }
  if (!isDType(tensor.dtype)) {
    throw badArg(
      file,
      "unknown dtype",
      `${name}.dtype`,
      "F32 F16 BF16 F64 I8 I16 I32 I64 U8 BOOL",
      describeValue(tensor.dtype),
    );
  }
  if (!Array.isArray(tensor.shape) || !tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw badArg(
      file,
      "shape must be non-negative integers",
      `${name}.shape`,
      "number[]",
      JSON.stringify(tensor.shape),
    );
  }
  const bytes = tensor.shape.reduce((acc, d) => acc * BigInt(d), 1n) * BigInt(dtypeByteSize(tensor.dtype));
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw badArg(file, "tensor too large", `${name}.shape`, `<= 2^53 bytes`, `${bytes} bytes`);
  }
  return { name, tensor, byteLength: Number(bytes) };
}

const VIEW_FOR: Record<DType, string[]> = {
  F32: ["Float32Array"],
  F64: ["Float64Array"],
  F16: ["Uint16Array"],
  BF16: ["Uint16Array"],
  I8: ["Int8Array"],
  I16: ["Int16Array"],
  I32: ["Int32Array"],
  I64: ["BigInt64Array"],
  U8: ["Uint8Array", "Uint8ClampedArray"],
  BOOL: ["Uint8Array"],
};

function viewName(v: ArrayBufferView): string {
  return ArrayBuffer.isView(v) ? v.constructor.name : describeValue(v);
}

/** The little-endian bytes of one tensor, converting a Float32Array when the dtype asks for it. */
export function encodeTensor(file: string, plan: PlannedTensor, data: TensorData): Uint8Array {
  const { name, byteLength } = plan;
  const { dtype, shape } = plan.tensor;
  if (!ArrayBuffer.isView(data)) {
    throw badArg(file, "tensor data must be a typed array", name, "ArrayBufferView", describeValue(data));
  }
  let view: ArrayBufferView = data;
  if (data instanceof Float32Array && dtype !== "F32") {
    const numel = byteLength / dtypeByteSize(dtype);
    if (data.length !== numel) {
      throw badArg(
        file,
        "data length does not match shape",
        name,
        `${numel} float32 values for [${shape.join(", ")}]`,
        `${data.length}`,
      );
    }
    if (dtype === "F16") view = float32ToF16(data);
    else if (dtype === "BF16") view = float32ToBF16(data);
    else if (dtype === "F64") view = Float64Array.from(data);
    else
      throw badArg(
        file,
        "Float32Array converts only to F16, BF16 or F64",
        name,
        `${VIEW_FOR[dtype].join(" or ")} or Uint8Array`,
        "Float32Array",
      );
  } else if (!(data instanceof Uint8Array) && !VIEW_FOR[dtype].includes(data.constructor.name)) {
    throw badArg(
      file,
      `wrong typed array for ${dtype}`,
      name,
      `${VIEW_FOR[dtype].join(" or ")} or raw Uint8Array bytes`,
      viewName(data),
    );
  }
  if (view.byteLength !== byteLength) {
    throw badArg(
      file,
      "data length does not match shape x dtype size",
      name,
      `${byteLength} bytes (${dtype} [${shape.join(", ")}])`,
      `${view.byteLength} bytes`,
    );
  }
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** The header bytes, space-padded to a multiple of 8 as the reference writer does (keeps data aligned). */
export function buildHeader(
  plans: PlannedTensor[],
  metadata: Record<string, string> | undefined,
  file: string,
): Uint8Array {
  // Built by hand, not with JSON.stringify(object): object key order puts integer-like names first, and a
  // "__proto__" key would be lost on a plain object.
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    const m: string[] = [];
    for (const [k, v] of metadataEntries(metadata, file, "INVALID_ARGUMENT"))
      m.push(`${JSON.stringify(k)}:${JSON.stringify(v)}`);
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${m.join(",")}}`);
  }
  let offset = 0;
  const seen = new Set<string>();
  for (const p of plans) {
    if (seen.has(p.name))
      throw badArg(file, "duplicate tensor name", p.name, "unique names", "a second tensor with this name");
    seen.add(p.name);
    const entry = {
      dtype: p.tensor.dtype,
      shape: p.tensor.shape,
      data_offsets: [offset, offset + p.byteLength],
    };
    parts.push(`${JSON.stringify(p.name)}:${JSON.stringify(entry)}`);
    offset += p.byteLength;
  }
  let json = `{${parts.join(",")}}`;
  const encoded = new TextEncoder().encode(json);
  const pad = (8 - (encoded.byteLength % 8)) % 8;
  if (pad > 0) json += " ".repeat(pad);
  const header = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + header.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(header.byteLength), true);
  out.set(header, 8);
  return out;
}

const MAX_WRITE = 1 << 30;

export async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.byteLength) {
    const { bytesWritten } = await handle.write(
      bytes,
      offset,
      Math.min(MAX_WRITE, bytes.byteLength - offset),
    );
    offset += bytesWritten;
  }
}

/** Write planned tensors through an open handle: header, then each tensor's data as it is produced. */
export async function writePlanned(
  handle: FileHandle,
  file: string,
  plans: PlannedTensor[],
  metadata: Record<string, string> | undefined,
): Promise<void> {
  await writeAll(handle, buildHeader(plans, metadata, file));
  for (const plan of plans) {
    const d = plan.tensor.data;
    const data = typeof d === "function" ? await d() : d;
    await writeAll(handle, encodeTensor(file, plan, data));
  }
}

/** Write one safetensors file atomically (temp file + fsync + rename; on any error no file is left). */
export async function writeSafetensors(
  path: string,
  tensors: TensorEntries,
  metadata?: Record<string, string>,
): Promise<void> {
  assertLittleEndian();
  const plans: PlannedTensor[] = [];
  for await (const [name, t] of iterateEntries(tensors)) plans.push(planTensor(path, name, t));
  buildHeader(plans, metadata, path); // validate names and metadata before creating anything
  await mkdir(dirname(path), { recursive: true });
  await withAtomicFile(path, (handle) => writePlanned(handle, path, plans, metadata));
}
