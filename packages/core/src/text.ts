/**
 * Text from untrusted files, decoded strictly: a byte sequence that is not UTF-8 is an error naming the file
 * and line, never a silent U+FFFD (Node's `readFile(path, "utf8")` replaces bad bytes without a word, so a
 * corrupt corpus or benchmark file would turn into different tokens and different numbers).
 */
import type { Stats } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import { HippoError } from "./errors.js";

const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** Byte offset of the first byte that does not belong to a well-formed UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i] as number;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) {
      need = 1;
      min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      min = 0x10000;
    } else return i;
    if (i + need >= n) return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8.
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return i;
    i += need + 1;
  }
  return -1;
}

/** 1-based line and byte column of `offset`. */
function positionOf(bytes: Uint8Array, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset; i++)
    if (bytes[i] === 0x0a) {
      line++;
      start = i + 1;
    }
  return { line, column: offset - start + 1 };
}

/**
 * Decode UTF-8 strictly. `firstLine` is the line number of the first byte (for a chunk of a larger file);
 * a leading byte-order mark is dropped, as Python's `utf-8-sig` and every JSON reader do.
 */
export function decodeUtf8(bytes: Uint8Array, file?: string, firstLine = 1): string {
  try {
    return strict.decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const offset = at < 0 ? bytes.length : at;
    const shown = Array.from(bytes.subarray(offset, offset + 4), (b) => b.toString(16).padStart(2, "0"));
    const { line, column } = positionOf(bytes, offset);
    throw new HippoError("INVALID_FORMAT", `invalid UTF-8 at byte ${column} of the line`, {
      ...(file !== undefined ? { file } : {}),
      line: firstLine + line - 1,
      expected: "UTF-8 text",
      got: `the bytes ${shown.join(" ")}`,
    });
  }
}

/** The error for a file that cannot be read (`e` from `fs`): NOT_FOUND when it is missing, else IO. */
export function readFailure(path: string, e: unknown): HippoError {
  const errno = (e as NodeJS.ErrnoException).code;
  return new HippoError(
    errno === "ENOENT" ? "NOT_FOUND" : "IO",
    `cannot read file: ${(e as Error).message}`,
    {
      file: path,
      cause: e,
    },
  );
}

/**
 * Check, before reading it, that `path` is a regular file (not a folder or a device); `expected` says what
 * kind of file the error names. Missing and unreadable paths are errors naming the path.
 */
export async function checkRegularFile(path: string, expected?: string): Promise<void> {
  let s: Stats;
  try {
    s = await stat(path);
  } catch (e) {
    throw readFailure(path, e);
  }
  if (!s.isFile()) throw new HippoError("INVALID_ARGUMENT", "not a regular file", { file: path, expected });
}

/** Whether something is at `path`, following links (a dangling link counts as missing). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Read a whole text file, strictly UTF-8; missing and unreadable files are errors naming the path. */
export async function readTextFile(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw readFailure(path, e);
  }
  return decodeUtf8(bytes, path);
}
