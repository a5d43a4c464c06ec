/**
 * Atomic writes: data goes to a temporary file in the same directory, is fsynced, then renamed over the
 * target, and the directory is fsynced. A crash at any point leaves either the old file or the new one,
 * never a half-written file. Temporary names start with `.` and contain `.tmp-`, so readers can ignore them.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { type FileHandle, lstat, mkdir, open, readdir, realpath, rename, rm } from "node:fs/promises";
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

/** Whether a process with this id runs now (signal 0 checks without sending anything). */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it exists, under another user.
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Remove the temporary files of `path` that a killed writer left (`.name.tmp-<pid>-<hex>` beside it, from a
 * process that no longer runs): a process killed between opening its temporary file and renaming it (SIGKILL,
 * out of memory, power loss) cannot clean up, and the next write of the same file is the one that knows the
 * name. Only that file's own temporaries are touched, never one whose writer still runs.
 */
async function removeStaleTemps(path: string): Promise<void> {
  const prefix = `.${basename(path)}.tmp-`;
  let names: string[];
  try {
    names = await readdir(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-[0-9a-f]{8}$/.exec(name.slice(prefix.length))?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || processAlive(pid)) continue;
    await rm(join(dirname(path), name), { force: true });
  }
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
 * into place. If `write` throws, the temporary file is removed and `path` is untouched. Temporary files of
 * `path` left by a writer that was killed are removed first (`removeStaleTemps`).
 */
export async function withAtomicFile<T>(path: string, write: (handle: FileHandle) => Promise<T>): Promise<T> {
  await removeStaleTemps(path);
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

export interface WriteDirOptions {
  /**
   * Whether an existing folder with something in it may be replaced. Called with the folder and its entry
   * names before `fill` runs and again just before the swap; return to allow, throw (a HippoError saying what
   * is there) to refuse. Without it, a folder that is not empty is refused.
   */
  mayReplace?: (dir: string, entries: string[]) => void | Promise<void>;
}

/** "a.txt, b, c and 12 more": a folder's entries for an error message. */
export function describeEntries(entries: readonly string[], max = 8): string {
  const shown = [...entries].sort().slice(0, max).join(", ");
  return entries.length > max ? `${shown} and ${entries.length - max} more` : shown;
}

/** What is at `dir` now: nothing, a folder (with its entries), or something that is not a folder. */
async function inspectTarget(
  dir: string,
): Promise<{ kind: "none" } | { kind: "dir"; entries: string[] } | { kind: "other" }> {
  try {
    const st = await lstat(dir);
    if (!st.isDirectory()) return { kind: "other" };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return { kind: "none" };
    throw e;
  }
  return { kind: "dir", entries: await readdir(dir) };
}

/**
 * The check writeDirAtomic makes before it writes: throws when `dir` could not be replaced under `options`
 * (callers use it to refuse before doing expensive work). Returns whether something is there.
 */
export async function checkDirTarget(dir: string, options: WriteDirOptions = {}): Promise<boolean> {
  return checkTarget(await realpath(dir).catch(() => dir), options);
}

async function checkTarget(dir: string, options: WriteDirOptions): Promise<boolean> {
  const t = await inspectTarget(dir);
  if (t.kind === "none") return false;
  if (t.kind === "other")
    throw new HippoError("INVALID_ARGUMENT", "not a folder, and an output folder never replaces it", {
      file: dir,
      expected: "a folder or a path that does not exist",
    });
  if (t.entries.length > 0) {
    if (!options.mayReplace)
      throw new HippoError(
        "INVALID_ARGUMENT",
        `refusing to replace this folder: it holds ${describeEntries(t.entries)}`,
        {
          file: dir,
          expected: "an empty or absent folder",
        },
      );
    await options.mayReplace(dir, t.entries);
  }
  return true;
}

/**
 * Build a whole directory atomically: `fill` writes into a fresh temporary directory beside `dir`, which then
 * takes its place. An existing `dir` is replaced only when it is an empty folder or `options.mayReplace`
 * allows it (it is moved aside, and removed after the swap); a path that is not a folder is never replaced,
 * and both are checked before `fill` runs, so a refused write costs nothing. A symbolic link to a folder is
 * followed: the folder it names is replaced and the link kept. Used for dataset, tokenizer and checkpoint
 * folders, whose files only make sense together.
 */
export async function writeDirAtomic<T>(
  dir: string,
  fill: (tmpDir: string) => Promise<T>,
  options: WriteDirOptions = {},
): Promise<T> {
  const target = await realpath(dir).catch(() => dir);
  await checkTarget(target, options);
  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  const tmp = tempPathFor(target);
  await mkdir(tmp);
  try {
    const result = await fill(tmp);
    await fsyncDir(tmp);
    const exists = await checkTarget(target, options); // again: the folder may have changed while `fill` ran
    const old = `${tmp}.old`;
    if (exists) await rename(target, old);
    await rename(tmp, target);
    await fsyncDir(parent);
    if (exists) await rm(old, { recursive: true, force: true });
    return result;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
