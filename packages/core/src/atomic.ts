/**
 * Atomic writes: data goes to a temporary file in the same directory, is fsynced, then renamed over the
 * target, and the directory is fsynced. A crash at any point leaves either the old file or the new one,
 * never a half-written file. Temporary names start with `.` and contain `.tmp-`, so readers can ignore them.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, mkdir, open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { HippoError } from "./errors.js";

export type WriteChunks = string | Uint8Array | Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
}

/** True for names created by the atomic helpers (temporary, never complete). */
export function isTempName(name: string): boolean {
  return name.startsWith(".") && name.includes(".tmp-");
}

async function fsyncDir(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, constants.O_RDONLY);
    await handle.sync();
  } catch {
    // Some filesystems do not allow fsync on directories; the rename itself is still atomic.
  } finally {
    await handle?.close();
  }
}

async function writeChunks(handle: FileHandle, data: WriteChunks): Promise<void> {
  if (typeof data === "string" || data instanceof Uint8Array) {
    await handle.writeFile(data);
    return;
  }
  for await (const chunk of data as AsyncIterable<Uint8Array>) {
    let offset = 0;
    while (offset < chunk.byteLength) {
      const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset);
      offset += bytesWritten;
    }
  }
}

/**
 * Write `data` to `path` atomically. `data` may be a string, bytes, or an (async) iterable of byte chunks
 * for large files that should not be held in memory at once.
 */
export async function writeFileAtomic(path: string, data: WriteChunks): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await withAtomicFile(path, (handle) => writeChunks(handle, data));
}

/**
 * Open a temporary file beside `path`, let `write` fill it through the handle, then fsync and rename it
 * into place. If `write` throws, the temporary file is removed and `path` is untouched.
 */
export async function withAtomicFile<T>(path: string, write: (handle: FileHandle) => Promise<T>): Promise<T> {
  const tmp = tempPathFor(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, "wx", 0o644);
    const result = await write(handle);
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(tmp, path);
    await fsyncDir(dirname(path));
    return result;
  } catch (e) {
    await handle?.close().catch(() => {});
    await rm(tmp, { force: true });
    if (e instanceof HippoError) throw e;
    throw new HippoError("IO", `could not write ${path}: ${(e as Error).message}`, { file: path, cause: e });
  }
}

/** JSON with a trailing newline, written atomically. */
export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Build a whole directory atomically: `fill` writes into a fresh temporary directory beside `dir`, which then
 * replaces `dir` (an existing `dir` is moved aside first and removed after the swap). Used for model and
 * adapter folders and checkpoints, whose files only make sense together.
 */
export async function writeDirAtomic<T>(dir: string, fill: (tmpDir: string) => Promise<T>): Promise<T> {
  const parent = dirname(dir);
  await mkdir(parent, { recursive: true });
  const tmp = tempPathFor(dir);
  await mkdir(tmp);
  try {
    const result = await fill(tmp);
    await fsyncDir(tmp);
    const old = `${tmp}.old`;
    let moved = false;
    try {
      await rename(dir, old);
      moved = true;
    } catch {
      // no previous directory
    }
    await rename(tmp, dir);
    await fsyncDir(parent);
    if (moved) await rm(old, { recursive: true, force: true });
    return result;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
