/**
 * Parse and validate a safetensors header from untrusted bytes, with the checks of the reference Rust
 * implementation (huggingface/safetensors `SafeTensors::read_metadata` + `Metadata::validate`): UTF-8, a JSON
 * object starting with `{`, known dtypes, integer shapes, and tensors that, sorted by offset, tile the data
 * region exactly (first at 0, no overlap, no hole, last ends at the data length) with
 * byte length = product(shape) x dtype size. Nothing is allocated from a size the header claims.
 */
import { describeValue, HippoError, isPlainObject, parseJsonSafe } from "@hippocrates/core";
import { type DType, dtypeByteSize, isDType } from "./dtypes.js";

export const DEFAULT_MAX_HEADER_BYTES = 100_000_000; // the reference's MAX_HEADER_SIZE
export const METADATA_KEY = "__metadata__";

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Absolute offset of the first byte in the file (8 + header length + data_offsets[0]). */
  byteOffset: number;
  byteLength: number;
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  /** In header order. */
  tensors: Map<string, TensorInfo>;
}

function invalid(file: string, reason: string, key?: string, expected?: string, got?: string): HippoError {
  return new HippoError("INVALID_FORMAT", reason, { file, key, expected, got });
}

/**
 * Validate the 8-byte little-endian header length against the file size before anything is allocated.
 * Returns the length as a number (safe: it is at most `maxHeaderBytes`).
 */
export function checkHeaderLength(file: string, n: bigint, fileSize: number, maxHeaderBytes: number): number {
  if (n > BigInt(maxHeaderBytes)) {
    throw invalid(file, "header length too large", "header length", `<= ${maxHeaderBytes} bytes`, `${n}`);
  }
  if (n + 8n > BigInt(fileSize)) {
    throw invalid(
      file,
      "header length runs past the end of the file",
      "header length",
      `<= ${Math.max(0, fileSize - 8)} (file size ${fileSize} - 8)`,
      `${n}`,
    );
  }
  if (n < 2n) throw invalid(file, "header too small for a JSON object", "header length", ">= 2", `${n}`);
  return Number(n);
}

function parseMetadata(file: string, value: unknown): Record<string, string> {
  const out = Object.create(null) as Record<string, string>;
  if (value === null || value === undefined) return out;
  if (!isPlainObject(value)) {
    throw invalid(
      file,
      "__metadata__ must be an object",
      METADATA_KEY,
      "object of strings",
      describeValue(value),
    );
  }
  for (const [k, v] of metadataEntries(value, file, "INVALID_FORMAT")) out[k] = v;
  return out;
}

/**
 * The entries of a `__metadata__` object, each value checked to be a string (the format allows only
 * str -> str). A non-string throws `code`: INVALID_FORMAT for a file being read, INVALID_ARGUMENT for metadata
 * a caller asks us to write.
 */
export function metadataEntries(
  value: object,
  file: string,
  code: "INVALID_FORMAT" | "INVALID_ARGUMENT",
): [string, string][] {
  return Object.entries(value).map(([k, v]) => {
    if (typeof v !== "string")
      throw new HippoError(code, "__metadata__ values must be strings", {
        file,
        key: `${METADATA_KEY}.${k}`,
        expected: "string",
        got: describeValue(v),
      });
    return [k, v];
  });
}

function parseShape(file: string, name: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) {
    throw invalid(
      file,
      "shape must be an array",
      `${name}.shape`,
      "array of non-negative integers",
      describeValue(shape),
    );
  }
  for (const [i, d] of shape.entries()) {
    if (typeof d !== "number" || !Number.isSafeInteger(d) || d < 0) {
      throw invalid(
        file,
        `shape[${i}] must be a non-negative integer`,
        `${name}.shape`,
        "non-negative integer",
        describeValue(d),
      );
    }
  }
  return shape as number[];
}

function parseOffsets(file: string, name: string, offsets: unknown): [number, number] {
  const ok =
    Array.isArray(offsets) &&
    offsets.length === 2 &&
    offsets.every((o) => typeof o === "number" && Number.isSafeInteger(o) && o >= 0);
  if (!ok) {
    throw invalid(
      file,
      "data_offsets must be [begin, end] non-negative integers",
      `${name}.data_offsets`,
      "[begin, end]",
      Array.isArray(offsets) ? JSON.stringify(offsets) : describeValue(offsets),
    );
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) {
    throw invalid(file, "data_offsets end before begin", `${name}.data_offsets`, `end >= ${begin}`, `${end}`);
  }
  return [begin, end];
}

/**
 * Top-level keys of a valid JSON object text in the order they appear. JS objects list integer-like keys
 * ("7") first, so the order of `Object.keys` is not the header's; this scan recovers it. The text has
 * already been parsed by JSON.parse, so only strings and nesting need tracking.
 */
export function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      for (i++; text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c /* \ */) i++;
      if (depth === 1 && expectKey) {
        keys.push(JSON.parse(text.slice(start, i + 1)) as string);
        expectKey = false;
      }
    } else if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
    } else if (c === 0x2c /* , */ && depth === 1) {
      expectKey = true;
    }
  }
  return [...new Set(keys)];
}

/**
 * Parse header bytes. `dataLength` is file size - 8 - header length: the tensors must cover it exactly.
 * `dataStart` (8 + header length) turns relative offsets into absolute ones.
 */
export function parseHeader(
  file: string,
  bytes: Uint8Array,
  dataStart: number,
  dataLength: number,
): ParsedHeader {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    throw new HippoError("INVALID_FORMAT", "header is not valid UTF-8", { file, key: "header", cause: e });
  }
  if (!text.startsWith("{")) {
    throw invalid(
      file,
      "header must be a JSON object",
      "header",
      "'{' as first byte",
      JSON.stringify(text.slice(0, 20)),
    );
  }
  const json = parseJsonSafe(text, file); // prototype-free objects: "__proto__" is an ordinary key
  if (!isPlainObject(json))
    throw invalid(file, "header must be a JSON object", "header", "object", describeValue(json));

  let metadata = Object.create(null) as Record<string, string>;
  const entries: { info: TensorInfo; begin: number; end: number }[] = [];
  for (const name of topLevelKeys(text)) {
    const value = json[name];
    if (name === METADATA_KEY) {
      metadata = parseMetadata(file, value);
      continue;
    }
    if (!isPlainObject(value)) {
      throw invalid(
        file,
        "tensor entry must be an object",
        name,
        "{dtype, shape, data_offsets}",
        describeValue(value),
      );
    }
    const { dtype, shape: rawShape, data_offsets } = value;
    if (!isDType(dtype)) {
      throw invalid(
        file,
        "unknown or unsupported dtype",
        `${name}.dtype`,
        "one of F32 F16 BF16 F64 I8 I16 I32 I64 U8 BOOL",
        describeValue(dtype),
      );
    }
    const shape = parseShape(file, name, rawShape);
    const [begin, end] = parseOffsets(file, name, data_offsets);
    // Size in BigInt: a product of safe integers can exceed 2^53 (or 2^64) and must not wrap.
    const want = shape.reduce((acc, d) => acc * BigInt(d), 1n) * BigInt(dtypeByteSize(dtype));
    if (want !== BigInt(end - begin)) {
      throw invalid(
        file,
        "byte length does not match shape x dtype size",
        name,
        `${want} bytes (${dtype} [${shape.join(", ")}])`,
        `${end - begin} bytes (data_offsets [${begin}, ${end}])`,
      );
    }
    entries.push({
      info: { name, dtype, shape: [...shape], byteOffset: dataStart + begin, byteLength: end - begin },
      begin,
      end,
    });
  }

  // Sorted by (begin, end), the tensors must tile [0, dataLength) exactly.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const { info, begin, end } of sorted) {
    if (begin !== cursor) {
      const overlaps = begin < cursor;
      throw invalid(
        file,
        overlaps ? "tensor data overlaps the previous tensor" : "hole in the data region before this tensor",
        `${info.name}.data_offsets`,
        overlaps ? `begin >= ${cursor}` : `begin = ${cursor}`,
        `[${begin}, ${end}]`,
      );
    }
    if (end > dataLength) {
      throw invalid(
        file,
        "tensor data runs past the end of the file",
        `${info.name}.data_offsets`,
        `end <= ${dataLength}`,
        `${end}`,
      );
    }
    cursor = end;
  }
  if (cursor !== dataLength) {
    throw invalid(
      file,
      "tensors do not cover the data region (trailing bytes)",
      "data_offsets",
      `last tensor ends at ${dataLength} (file size - 8 - header length)`,
      `${cursor}`,
    );
  }
  const tensors = new Map<string, TensorInfo>();
  for (const { info } of entries) tensors.set(info.name, info);
  return { metadata, tensors };
}
