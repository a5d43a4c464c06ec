/**
 * JSONL, the one reader and the one writer every package uses (datasets, benchmark files, eval samples,
 * caches, training metrics). Reading streams line by line in bounded memory, decodes each line strictly as
 * UTF-8 and parses it into prototype-free values (`parseJsonSafe`); every problem names the file and line.
 *
 * Append-only files (request caches, metrics) can end in a torn line when a process dies mid-append: with
 * `onTornTail` such a last line (no newline after it, not valid JSON) is reported with its byte offset, so
 * the caller can cut it off before appending, instead of failing the whole file.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { type FileHandle, mkdir, open } from "node:fs/promises";
import { dirname } from "node:path";
import { withAtomicFile } from "./atomic.js";
import { describeValue, HippoError } from "./errors.js";
import { isPlainObject, parseJsonSafe } from "./json.js";
import { checkRegularFile, decodeUtf8 } from "./text.js";

export interface JsonlLine {
  value: unknown;
  /** 1-based line number in the file. */
  line: number;
}

export interface ReadJsonlOptions {
  /**
   * A line that is not JSON (or not UTF-8): by default the error is thrown; a callback may count or log it
   * and return, and reading goes on with the next line.
   */
  onInvalidLine?: (error: HippoError) => void;
  /** The last line has no newline and is not JSON: a torn append. Called instead of failing. */
  onTornTail?: (tail: { line: number; offset: number }) => void;
  /** Longest line accepted, in bytes (default 256 MiB): a longer one is an error, not an out-of-memory. */
  maxLineBytes?: number;
}

const MAX_LINE_BYTES = 256 * 1024 * 1024;

/** The values of a JSONL file with their line numbers; blank lines are skipped. */
export async function* readJsonl(path: string, options: ReadJsonlOptions = {}): AsyncGenerator<JsonlLine> {
  await checkRegularFile(path, "a JSONL file");
  const maxLine = options.maxLineBytes ?? MAX_LINE_BYTES;
  const fail = (e: HippoError) => {
    if (options.onInvalidLine) options.onInvalidLine(e);
    else throw e;
  };
  const stream = createReadStream(path);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let line = 0;
  let offset = 0; // byte offset of the start of the pending line
  const parse = (bytes: Uint8Array, last: boolean): JsonlLine | undefined => {
    line++;
    let text: string;
    try {
      text = decodeUtf8(bytes, path, line);
    } catch (e) {
      fail(e as HippoError);
      return undefined;
    }
    if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.endsWith("\r")) text = text.slice(0, -1);
    if (text.trim() === "") return undefined;
    try {
      return { value: parseJsonSafe(text), line };
    } catch (e) {
      if (last && options.onTornTail) {
        options.onTornTail({ line, offset });
        return undefined;
      }
      fail(
        new HippoError(
          "INVALID_FORMAT",
          `not a JSON value: ${(e as HippoError).reason.replace(/^invalid JSON: /, "")}`,
          {
            file: path,
            line,
            expected: "one JSON value per line",
            got: describeValue(text),
          },
        ),
      );
      return undefined;
    }
  };
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        if (nl < 0) break;
        const piece = chunk.subarray(start, nl);
        const bytes = pending.length ? Buffer.concat([...pending, piece]) : piece;
        pending = [];
        pendingBytes = 0;
        const parsed = parse(bytes, false);
        offset += bytes.length + 1;
        if (parsed) yield parsed;
        start = nl + 1;
      }
      if (start < chunk.length) {
        pending.push(chunk.subarray(start));
        pendingBytes += chunk.length - start;
        if (pendingBytes > maxLine)
          throw new HippoError("INVALID_FORMAT", "line too long", {
            file: path,
            line: line + 1,
            expected: `at most ${maxLine} bytes per line`,
          });
      }
    }
    if (pending.length) {
      const parsed = parse(Buffer.concat(pending), true);
      if (parsed) yield parsed;
    }
  } finally {
    // The consumer may stop early (a bad record under a "fail" policy): release the file now, not at GC.
    stream.destroy();
  }
}

/** Every line of a JSONL file as an object (a line that is not an object is an error naming it). */
export async function readJsonlObjects(
  path: string,
  options: ReadJsonlOptions = {},
): Promise<{ line: number; record: Record<string, unknown> }[]> {
  const out: { line: number; record: Record<string, unknown> }[] = [];
  for await (const { value, line } of readJsonl(path, options)) {
    if (!isPlainObject(value)) {
      const e = new HippoError("INVALID_RECORD", "each line must be a JSON object", {
        file: path,
        line,
        expected: "object",
        got: describeValue(value),
      });
      if (options.onInvalidLine) {
        options.onInvalidLine(e);
        continue;
      }
      throw e;
    }
    out.push({ line, record: value });
  }
  return out;
}

/** One line of JSONL for a value (`JSON.stringify` plus the newline). */
export function jsonlLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

/** Write a whole JSONL file atomically (temporary file, fsync, rename). */
export async function writeJsonlAtomic(path: string, rows: Iterable<unknown>): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await withAtomicFile(path, async (handle) => {
    let buf: string[] = [];
    let size = 0;
    for (const row of rows) {
      const l = jsonlLine(row);
      buf.push(l);
      size += l.length;
      if (size >= 1 << 20) {
        await handle.write(buf.join(""));
        buf = [];
        size = 0;
      }
    }
    if (buf.length) await handle.write(buf.join(""));
  });
}

/** Append records to a JSONL file and fsync before returning (logs that must survive a crash). */
export async function appendJsonl(path: string, records: readonly unknown[]): Promise<void> {
  if (records.length === 0) return;
  let handle: FileHandle | undefined;
  try {
    handle = await open(path, "a");
    await handle.write(records.map(jsonlLine).join(""));
    await handle.datasync();
  } catch (e) {
    throw new HippoError("IO", `cannot append to ${path}: ${(e as Error).message}`, { file: path, cause: e });
  } finally {
    await handle?.close();
  }
}

export interface JsonlWriter {
  write(record: unknown): Promise<void>;
  /** Number of records written so far. */
  readonly count: number;
  /** Close without flushing (the build failed; the file is being thrown away). */
  discard(): Promise<void>;
  /** Flush, fsync and close; returns the sha256 of the file's bytes. */
  close(): Promise<{ records: number; sha256: string; bytes: number }>;
}

/**
 * A buffered streaming JSONL writer for large outputs, created with `wx` (it never overwrites): write it into
 * a folder that appears atomically (`writeDirAtomic`), or use `writeJsonlAtomic` for a single file.
 */
export async function createJsonlWriter(path: string, bufferBytes = 1 << 20): Promise<JsonlWriter> {
  const handle: FileHandle = await open(path, "wx", 0o644);
  const hash = createHash("sha256");
  let parts: string[] = [];
  let pending = 0;
  let count = 0;
  let bytes = 0;
  const flush = async () => {
    if (parts.length === 0) return;
    const buf = Buffer.from(parts.join(""), "utf8");
    parts = [];
    pending = 0;
    hash.update(buf);
    bytes += buf.byteLength;
    let off = 0;
    while (off < buf.byteLength) off += (await handle.write(buf, off, buf.byteLength - off)).bytesWritten;
  };
  return {
    get count() {
      return count;
    },
    async write(record) {
      const line = jsonlLine(record);
      parts.push(line);
      pending += line.length;
      count++;
      if (pending >= bufferBytes) await flush();
    },
    async discard() {
      parts = [];
      await handle.close().catch(() => {});
    },
    async close() {
      try {
        await flush();
        await handle.sync();
      } finally {
        await handle.close();
      }
      return { records: count, sha256: hash.digest("hex"), bytes };
    },
  };
}
