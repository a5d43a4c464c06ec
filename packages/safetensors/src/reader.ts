/**
 * Lazy safetensors reader: opens the file, reads the 8-byte length and the header, validates both against
 * the real file size, and afterwards reads one tensor at a time through the file handle.
 */

import { type FileHandle, open } from "node:fs/promises";
import { HippoError } from "@hippocrates/core";
import { assertLittleEndian, bytesToFloat32, bytesToTyped } from "./convert.js";
import type { TypedTensorData } from "./dtypes.js";
import { checkHeaderLength, DEFAULT_MAX_HEADER_BYTES, parseHeader, type TensorInfo } from "./header.js";

export interface SafetensorsReader {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Insertion order = header order. */
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** Raw little-endian bytes of one tensor (a fresh, 8-byte aligned buffer). */
  readBytes(name: string): Promise<Uint8Array>;
  /** Any dtype converted to float32 (I64 through Number, BOOL as 0/1). */
  readFloat32(name: string): Promise<Float32Array>;
  /** The dtype's own typed array; F16/BF16 widen to Float32Array, U8/BOOL are Uint8Array. */
  readTyped(name: string): Promise<TypedTensorData>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Upper bound on the header length (default 100,000,000 bytes, as the reference implementation). */
  maxHeaderBytes?: number;
}

// Node rejects single reads above 2 GiB - 1; big tensors are read in pieces.
const MAX_READ = 1 << 30;

/** Read exactly `length` bytes at `position` into `into`; a short file is a format error (it changed or lies). */
export async function readExactly(
  handle: FileHandle,
  file: string,
  into: Uint8Array,
  position: number,
  key: string,
): Promise<void> {
  let done = 0;
  while (done < into.byteLength) {
    const want = Math.min(MAX_READ, into.byteLength - done);
    const { bytesRead } = await handle.read(into, done, want, position + done);
    if (bytesRead === 0) {
      throw new HippoError("INVALID_FORMAT", "unexpected end of file", {
        file,
        key,
        expected: `${into.byteLength} bytes at offset ${position}`,
        got: `${done} bytes`,
      });
    }
    done += bytesRead;
  }
}

export async function openSafetensors(path: string, options: OpenOptions = {}): Promise<SafetensorsReader> {
  assertLittleEndian();
  const maxHeaderBytes = options.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
  let handle: FileHandle;
  try {
    handle = await open(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code === "ENOENT" ? "NOT_FOUND" : "IO";
    throw new HippoError(code, `cannot open safetensors file: ${(e as Error).message}`, {
      file: path,
      cause: e,
    });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) {
      throw new HippoError("INVALID_FORMAT", "not a regular file", {
        file: path,
        expected: "file",
        got: "directory or device",
      });
    }
    const size = stat.size;
    if (size < 8) {
      throw new HippoError("INVALID_FORMAT", "file too small for a safetensors header", {
        file: path,
        key: "header length",
        expected: ">= 8 bytes",
        got: `${size} bytes`,
      });
    }
    const lenBytes = new Uint8Array(8);
    await readExactly(handle, path, lenBytes, 0, "header length");
    const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
    const headerLength = checkHeaderLength(path, n, size, maxHeaderBytes);
    const headerBytes = new Uint8Array(headerLength);
    await readExactly(handle, path, headerBytes, 8, "header");
    const dataStart = 8 + headerLength;
    const { metadata, tensors } = parseHeader(path, headerBytes, dataStart, size - dataStart);
    return makeReader(path, handle, metadata, tensors);
  } catch (e) {
    await handle.close().catch(() => {});
    throw e;
  }
}

function makeReader(
  path: string,
  handle: FileHandle,
  metadata: Record<string, string>,
  tensors: Map<string, TensorInfo>,
): SafetensorsReader {
  let closed = false;
  const info = (name: string): TensorInfo => {
    if (closed) throw new HippoError("INVALID_ARGUMENT", "reader is closed", { file: path, key: name });
    const t = tensors.get(name);
    if (!t) {
      throw new HippoError("NOT_FOUND", "no such tensor", {
        file: path,
        key: name,
        expected: tensors.size <= 8 ? [...tensors.keys()].join(", ") : `one of ${tensors.size} tensors`,
      });
    }
    return t;
  };
  const readBytes = async (name: string): Promise<Uint8Array> => {
    const t = info(name);
    // Safe to allocate: the header was validated so byteLength fits inside the real file.
    const out = new Uint8Array(t.byteLength);
    await readExactly(handle, path, out, t.byteOffset, name);
    return out;
  };
  return {
    path,
    metadata,
    tensors,
    readBytes,
    async readFloat32(name) {
      const bytes = await readBytes(name);
      return bytesToFloat32(info(name).dtype, bytes);
    },
    async readTyped(name) {
      const bytes = await readBytes(name);
      return bytesToTyped(info(name).dtype, bytes);
    },
    async close() {
      if (closed) return;
      closed = true;
      await handle.close();
    },
  };
}
