/**
 * Minimal F32 safetensors writer/reader for checkpoint state (trainable weights, optimizer moments). The files
 * are ordinary safetensors (8-byte little-endian header length, JSON header, raw data), readable by any
 * safetensors library; this module only needs float32 and validates everything it reads.
 */
import { readFile } from "node:fs/promises";
import { HippoError, isPlainObject, parseJsonSafe, writeFileAtomic } from "@hippocrates/core";

export interface NamedArray {
  name: string;
  shape: number[];
  data: Float32Array;
}

export function encodeF32Safetensors(tensors: readonly NamedArray[]): Uint8Array {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.data.length * 4;
    header[t.name] = { dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  // Pad with spaces to a multiple of 8 bytes (not UTF-16 units: a non-ASCII name would misalign the data), as
  // the reference writer does.
  const headerBytes = new Uint8Array(json.length + ((8 - (json.length % 8)) % 8)).fill(0x20);
  headerBytes.set(json);
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let pos = 8 + headerBytes.length;
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
    pos += t.data.byteLength;
  }
  return out;
}

export async function writeF32Safetensors(path: string, tensors: readonly NamedArray[]): Promise<void> {
  await writeFileAtomic(path, encodeF32Safetensors(tensors));
}

export function decodeF32Safetensors(bytes: Uint8Array, file: string): Map<string, NamedArray> {
  if (bytes.length < 8)
    throw new HippoError("INVALID_FORMAT", "file too short for a safetensors header", {
      file,
      got: `${bytes.length} bytes`,
    });
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (n > bytes.length - 8)
    throw new HippoError("INVALID_FORMAT", "header length beyond the end of the file", {
      file,
      expected: `<= ${bytes.length - 8}`,
      got: String(n),
    });
  const header = parseJsonSafe(new TextDecoder().decode(bytes.subarray(8, 8 + n)), file);
  if (!isPlainObject(header)) throw new HippoError("INVALID_FORMAT", "header is not an object", { file });
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const out = new Map<string, NamedArray>();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    if (!isPlainObject(info))
      throw new HippoError("INVALID_FORMAT", "tensor entry is not an object", { file, key: name });
    const shape = info.shape;
    const offs = info.data_offsets;
    if (info.dtype !== "F32")
      throw new HippoError("INVALID_FORMAT", "unsupported dtype", {
        file,
        key: name,
        expected: "F32",
        got: String(info.dtype),
      });
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      throw new HippoError("INVALID_FORMAT", "bad shape", { file, key: name, got: JSON.stringify(shape) });
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((d) => Number.isInteger(d)))
      throw new HippoError("INVALID_FORMAT", "bad data_offsets", {
        file,
        key: name,
        got: JSON.stringify(offs),
      });
    const [a, b] = offs as [number, number];
    const count = (shape as number[]).reduce((x, y) => x * y, 1);
    if (a < 0 || b > dataLen || b - a !== count * 4)
      throw new HippoError("INVALID_FORMAT", "data_offsets do not match the shape or the file", {
        file,
        key: name,
        expected: `${count * 4} bytes within ${dataLen}`,
        got: `[${a}, ${b}]`,
      });
    const copy = new Float32Array(count);
    new Uint8Array(copy.buffer).set(bytes.subarray(dataStart + a, dataStart + b));
    out.set(name, { name, shape: shape as number[], data: copy });
  }
  return out;
}

export async function readF32Safetensors(path: string): Promise<Map<string, NamedArray>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new HippoError("NOT_FOUND", `cannot read ${path}`, { file: path, cause: e });
  }
  return decodeF32Safetensors(bytes, path);
}
