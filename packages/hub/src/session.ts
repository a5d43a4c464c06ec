/**
 * One repository at one revision: resolve the revision to a commit, list its files, and download the chosen
 * ones into the cache. The HTTP calls are `@huggingface/hub`'s (`modelInfo`/`datasetInfo` for the commit sha,
 * `listFiles` for the tree with sizes and LFS sha256s, `downloadFile` whose blob serves byte ranges); this
 * file adds what that library lacks: resume of a partial `.incomplete` file, sha256/sha1 verification,
 * progress with rate and ETA, a lock between processes, and the atomic blob-then-symlink move.
 */
import { createHash, type Hash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { link, mkdir, open, readFile, rename, rm, truncate, unlink } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createBarReporter, HippoError, type ProgressReporter, type ProgressTask } from "@hippocrates/core";
import { datasetInfo, downloadFile, listFiles, modelInfo } from "@huggingface/hub";
import {
  blobPath,
  checkRepoPath,
  fileSize,
  isCached,
  linkBlob,
  markMissing,
  repoStorage,
  writeRef,
} from "./cache.js";
import type { HubOptions, HubSettings } from "./env.js";
import { hubSettings } from "./env.js";
import { type ErrorContext, hubError } from "./errors.js";
import { describeRef, hubRef, isCommitSha, type RepoType, repoFolderName } from "./repo-id.js";

/** A file of the repository as the Hub's tree API lists it. */
export interface RemoteFile {
  path: string;
  size: number;
  /** sha256 for LFS files (also the blob's name and the Hub's X-Linked-Etag), git blob sha1 otherwise. */
  hash: string;
  lfs: boolean;
}

export interface Session {
  repo: string;
  type: RepoType;
  revision: string;
  settings: HubSettings;
  storage: string;
  fetch: typeof fetch;
  progress: ProgressReporter | undefined;
  signal: AbortSignal | undefined;
  gated: boolean;
}

export function openSession(repo: string, type: RepoType, revision: string, options: HubOptions): Session {
  const settings = hubSettings(options);
  const signal = options.signal;
  const base = options.fetch ?? globalThis.fetch;
  // Every request of the library goes through here, so one AbortSignal stops whichever is in flight.
  const wrapped: typeof fetch = (input, init) =>
    base(input, signal === undefined ? init : { ...init, signal });
  return {
    repo,
    type,
    revision,
    settings,
    storage: repoStorage(settings.cacheDir, repo, type),
    fetch: wrapped,
    progress: options.progress,
    signal,
    gated: false,
  };
}

/**
 * Open a session on `repoId` (`org/name` or `org/name@rev`; `revision` when the id has none, default `main`)
 * and run `work` in it; whatever fails becomes a HippoError naming the repository, revision and endpoint.
 */
export async function inSession<T>(
  repoId: string,
  type: RepoType,
  options: HubOptions & { revision?: string },
  work: (s: Session) => Promise<T>,
): Promise<T> {
  const ref = hubRef(repoId, options.revision);
  const s = openSession(ref.repo, type, ref.revision ?? "main", options);
  try {
    return await work(s);
  } catch (e) {
    throw hubError(e, errorContext(s));
  }
}

export function errorContext(s: Session, path?: string): ErrorContext {
  return {
    repo: s.repo,
    type: s.type,
    revision: s.revision,
    endpoint: s.settings.endpoint,
    tokenSent: s.settings.token !== undefined,
    gated: s.gated,
    path,
  };
}

function credentials(s: Session) {
  return { hubUrl: s.settings.endpoint, accessToken: s.settings.token, fetch: s.fetch };
}

/** The commit sha the revision points to now (one request), and whether the repository is gated. */
export async function resolveCommit(s: Session): Promise<string> {
  try {
    const params = {
      ...credentials(s),
      name: s.repo,
      revision: s.revision,
      additionalFields: ["sha" as const],
    };
    const info = s.type === "model" ? await modelInfo(params) : await datasetInfo(params);
    s.gated = info.gated !== false && info.gated !== undefined;
    const sha = (info as { sha?: unknown }).sha;
    if (typeof sha !== "string" || !isCommitSha(sha)) {
      throw new HippoError("INVALID_FORMAT", "the Hub's repository info has no commit sha", {
        file: describeRef(s.repo, s.revision),
        key: "sha",
        got: String(sha).slice(0, 60),
      });
    }
    return sha;
  } catch (e) {
    throw hubError(e, errorContext(s));
  }
}

/** Every file of the repository at `commit` (the tree API, recursive). */
export async function listRepo(s: Session, commit: string): Promise<Map<string, RemoteFile>> {
  const files = new Map<string, RemoteFile>();
  try {
    for await (const entry of listFiles({
      ...credentials(s),
      repo: { type: s.type, name: s.repo },
      revision: commit,
      recursive: true,
    })) {
      if (entry.type !== "file") continue;
      const hash = entry.lfs?.oid ?? entry.oid;
      if (hash === undefined) continue; // xet-only entries without a git oid cannot be verified; skip them
      files.set(entry.path, {
        path: entry.path,
        size: entry.lfs?.size ?? entry.size,
        hash,
        lfs: entry.lfs !== undefined,
      });
    }
  } catch (e) {
    throw hubError(e, errorContext(s));
  }
  return files;
}

/**
 * Refuse a metadata file (README, safetensors index) larger than `max` before it is downloaded and parsed in
 * memory: real ones are kilobytes (MMLU's README with 57 configs: 53 KB), so a huge one is not one.
 */
export function checkMetadataSize(s: Session, file: RemoteFile, max: number): void {
  if (file.size > max) {
    throw new HippoError("INVALID_FORMAT", `${file.path} is too large to be what its name says`, {
      file: `${describeRef(s.repo, s.revision)}: ${file.path}`,
      expected: `at most ${max} bytes`,
      got: `${file.size} bytes`,
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// Locks: two processes (e.g. eval shards started together) must not append to the same .incomplete file.

function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * An exclusive lock file holding the owner's pid, created atomically (hard link of a complete temporary file,
 * which fails when the lock exists). A lock whose process is gone is taken over. Python's own `.lock` files
 * (fcntl locks on files it never deletes) are left alone: ours is `<hash>.hippo-lock` beside them.
 */
async function acquireLock(file: string, s: Session, what: string): Promise<() => Promise<void>> {
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}-${randomBytes(4).toString("hex")}`;
  await writeFileSimple(tmp, String(process.pid));
  let told = false;
  try {
    for (;;) {
      try {
        await link(tmp, file);
        return async () => {
          await rm(file, { force: true });
        };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
      const owner = Number((await readFile(file, "utf8").catch(() => "")).trim());
      if (!pidAlive(owner)) {
        await rm(file, { force: true });
        continue;
      }
      if (!told) {
        process.stderr.write(`waiting for process ${owner}, which is downloading ${what}\n`);
        told = true;
      }
      if (s.signal?.aborted) throw s.signal.reason ?? new DOMException("aborted", "AbortError");
      await sleep(250);
    }
  } finally {
    await unlink(tmp).catch(() => {});
  }
}

async function writeFileSimple(path: string, text: string): Promise<void> {
  const h = await open(path, "w");
  try {
    await h.writeFile(text);
  } finally {
    await h.close();
  }
}

// ---------------------------------------------------------------------------------------------------------

function newHasher(file: RemoteFile): Hash {
  if (file.lfs) return createHash("sha256");
  return createHash("sha1").update(`blob ${file.size}\0`);
}

async function hashExisting(path: string, hasher: Hash, bytes: number): Promise<void> {
  if (bytes === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: bytes - 1 }))
    hasher.update(chunk as Buffer);
}

class RangeIgnored extends Error {}

/**
 * Download one file into `blobs/<hash>`: continue `<hash>.incomplete` from its size with a Range request,
 * hash everything (the partial part first), and rename into place only when the hash is the Hub's. A resumed
 * file whose hash is wrong is downloaded once more from the start; a fresh one is an error.
 */
async function downloadBlob(s: Session, commit: string, file: RemoteFile, task: ProgressTask): Promise<void> {
  const blob = blobPath(s.storage, file.hash);
  if ((await fileSize(blob)) === file.size) return;
  const lockFile = join(
    s.settings.cacheDir,
    ".locks",
    repoFolderName(s.repo, s.type),
    `${file.hash}.hippo-lock`,
  );
  const release = await acquireLock(lockFile, s, `${s.repo}/${file.path}`);
  try {
    if ((await fileSize(blob)) === file.size) return; // the other process finished it
    const incomplete = `${blob}.incomplete`;
    for (let attempt = 0; ; attempt++) {
      let offset = (await fileSize(incomplete)) ?? 0;
      if (offset > file.size) {
        await truncate(incomplete, 0);
        offset = 0;
      }
      const hasher = newHasher(file);
      await hashExisting(incomplete, hasher, offset);
      if (offset > 0) task.tick(0, { resumed: `${file.path}@${offset}` });
      try {
        await fetchRange(s, commit, file, incomplete, offset, hasher, task);
      } catch (e) {
        if (e instanceof RangeIgnored && attempt === 0) {
          await truncate(incomplete, 0);
          continue;
        }
        throw e;
      }
      const digest = hasher.digest("hex");
      if (digest === file.hash) {
        await rename(incomplete, blob);
        return;
      }
      await rm(incomplete, { force: true });
      if (offset > 0 && attempt === 0) continue; // the old partial part may be the bad one: start over once
      throw new HippoError(
        "INVALID_FORMAT",
        `downloaded ${file.path} does not match the Hub's ${file.lfs ? "sha256" : "git sha1"}; ` +
          "nothing was moved into the cache (the bytes were corrupted on the way or in storage), run again",
        { file: `${describeRef(s.repo, s.revision)}: ${file.path}`, expected: file.hash, got: digest },
      );
    }
  } finally {
    await release();
  }
}

/** Append bytes [offset, size) of the file to `incomplete`, through the hasher and the progress task. */
async function fetchRange(
  s: Session,
  commit: string,
  file: RemoteFile,
  incomplete: string,
  offset: number,
  hasher: Hash,
  task: ProgressTask,
): Promise<void> {
  if (offset === file.size) return;
  let remote: Blob | null;
  try {
    remote = await downloadFile({
      ...credentials(s),
      repo: { type: s.type, name: s.repo },
      path: file.path,
      revision: commit,
      xet: false, // plain HTTP: the resolve URL redirects xet-backed files to a byte-serving bridge
    });
  } catch (e) {
    throw hubError(e, errorContext(s, file.path));
  }
  if (remote === null) {
    throw new HippoError("NOT_FOUND", `${describeRef(s.repo, s.revision)} has no file ${file.path}`, {
      file: file.path,
    });
  }
  if (remote.size !== file.size) {
    throw new HippoError(
      "INVALID_FORMAT",
      "the Hub's resolve endpoint and tree listing disagree on the file size",
      {
        file: `${describeRef(s.repo, s.revision)}: ${file.path}`,
        expected: String(file.size),
        got: String(remote.size),
      },
    );
  }
  await mkdir(dirname(incomplete), { recursive: true });
  const handle = await open(incomplete, "a");
  let received = 0;
  const want = file.size - offset;
  try {
    const stream = offset > 0 ? remote.slice(offset).stream() : remote.stream();
    const reader = stream.getReader();
    for (;;) {
      let chunk: Awaited<ReturnType<typeof reader.read>>;
      try {
        chunk = await reader.read();
      } catch (e) {
        throw interrupted(s, file, offset + received, e);
      }
      if (chunk.done) break;
      const bytes = chunk.value;
      if (received + bytes.byteLength > want) {
        // A server that ignores Range sends the whole file again: what was appended is not the tail.
        await reader.cancel().catch(() => {});
        await handle.truncate(offset);
        throw new RangeIgnored();
      }
      let written = 0;
      while (written < bytes.byteLength) {
        const r = await handle.write(bytes, written, bytes.byteLength - written);
        written += r.bytesWritten;
      }
      hasher.update(bytes);
      received += bytes.byteLength;
      task.tick(bytes.byteLength, { file: file.path });
    }
    if (received !== want) throw interrupted(s, file, offset + received, undefined);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function interrupted(s: Session, file: RemoteFile, have: number, cause: unknown): HippoError {
  if (s.signal?.aborted) {
    return new HippoError(
      "ABORTED",
      `download of ${file.path} was stopped at ${have} of ${file.size} bytes; run again to resume it`,
      { file: `${describeRef(s.repo, s.revision)}: ${file.path}`, cause },
    );
  }
  const detail =
    cause instanceof Error ? cause.message : typeof cause === "string" ? cause : "connection closed";
  return new HippoError(
    "HTTP",
    `download of ${file.path} was interrupted at ${have} of ${file.size} bytes (${detail}); run again to resume it`,
    { file: `${describeRef(s.repo, s.revision)}: ${file.path}`, cause },
  );
}

export interface FetchPlan {
  /** Files to have in the snapshot. */
  files: RemoteFile[];
  /** Paths the repository does not have, recorded under `.no_exist/<commit>/` as Python does. */
  missing: string[];
}

/**
 * Download every file of the plan not yet in the cache (one progress task over all their bytes), then link
 * them all into `snapshots/<commit>/`, record the missing ones and write `refs/<revision>` last: a snapshot is
 * only ever extended by complete files.
 */
export async function fetchPlan(s: Session, commit: string, plan: FetchPlan): Promise<void> {
  for (const f of plan.files) checkRepoPath(f.path, describeRef(s.repo, s.revision));
  const needed: RemoteFile[] = [];
  for (const f of plan.files) {
    if (
      (await fileSize(blobPath(s.storage, f.hash))) !== f.size ||
      !(await isCached(s.storage, commit, f.path))
    ) {
      needed.push(f);
    }
  }
  const toDownload: RemoteFile[] = [];
  for (const f of needed) if ((await fileSize(blobPath(s.storage, f.hash))) !== f.size) toDownload.push(f);
  if (toDownload.length > 0) {
    const total = toDownload.reduce((a, f) => a + f.size, 0);
    let initial = 0;
    for (const f of toDownload)
      initial += Math.min((await fileSize(`${blobPath(s.storage, f.hash)}.incomplete`)) ?? 0, f.size);
    const reporter = s.progress ?? createBarReporter();
    const task = reporter.start({
      name: `download ${s.type === "dataset" ? "dataset " : ""}${describeRef(s.repo, s.revision)}`,
      total,
      unit: "B",
      initial,
    });
    try {
      for (const f of toDownload) await downloadBlob(s, commit, f, task);
    } finally {
      task.done();
    }
  }
  for (const f of needed) await linkBlob(s.storage, commit, f.path, f.hash);
  for (const path of plan.missing) await markMissing(s.storage, commit, path);
  await writeRef(s.storage, s.revision, commit);
}
