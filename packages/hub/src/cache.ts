/**
 * The cache layout of Python's `huggingface_hub` (file_download.py, 0.2x-1.x), read and written here so that a
 * model downloaded by either tool is found by the other:
 *
 *   <cacheDir>/models--org--name/
 *     blobs/<hash>                      file contents; hash = sha256 for LFS files, git blob sha1 otherwise
 *     refs/<revision>                   the commit sha the revision pointed to (no newline)
 *     snapshots/<commit>/<path>         relative symlink to ../../blobs/<hash> (one ../ more per folder level)
 *     .no_exist/<commit>/<path>         empty file: the Hub said this file does not exist at that commit
 *
 * Paths inside a repository come from the Hub (untrusted): every one is checked before it is joined.
 */
import { createHash, randomBytes } from "node:crypto";
import { copyFile, mkdir, readFile, rename, rm, stat, symlink } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { HippoError, pathExists, writeFileAtomic } from "@hippocrates/core";
import { isCommitSha, isRevision, type RepoType, repoFolderName } from "./repo-id.js";

export function repoStorage(cacheDir: string, repo: string, type: RepoType): string {
  return join(cacheDir, repoFolderName(repo, type));
}

/** Reject a repository path that could leave the snapshot folder (absolute, `..`, empty parts, NUL, `\`). */
export function checkRepoPath(path: string, where: string): void {
  const parts = path.split("/");
  const bad =
    path.length === 0 ||
    path.length > 1024 ||
    path.includes("\0") ||
    path.includes("\\") ||
    parts.some((p) => p === "" || p === "." || p === "..");
  if (bad) {
    throw new HippoError("UNSAFE_PATH", "repository file path would leave the repository folder", {
      file: where,
      got: JSON.stringify(path),
      expected: "a relative path without '..', empty parts or backslashes",
    });
  }
}

export function snapshotDir(storage: string, commit: string): string {
  return join(storage, "snapshots", commit);
}

/** The commit a revision points to: the revision itself when it is a sha, else `refs/<revision>`. */
export async function readRef(storage: string, revision: string): Promise<string | undefined> {
  if (isCommitSha(revision)) return revision;
  if (!isRevision(revision)) return undefined;
  let text: string;
  try {
    text = await readFile(join(storage, "refs", revision), "utf8");
  } catch {
    return undefined;
  }
  const commit = text.trim();
  if (!isCommitSha(commit)) {
    throw new HippoError("INVALID_FORMAT", "cache ref file does not hold a commit sha", {
      file: join(storage, "refs", revision),
      expected: "40 hex digits",
      got: JSON.stringify(commit.slice(0, 60)),
    });
  }
  return commit;
}

/** `refs/<revision>` = commit, atomically, no trailing newline (as Python writes it). */
export async function writeRef(storage: string, revision: string, commit: string): Promise<void> {
  if (revision === commit) return;
  const path = join(storage, "refs", revision);
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, commit);
}

export function cachedPath(storage: string, commit: string, path: string): string {
  checkRepoPath(path, storage);
  return join(snapshotDir(storage, commit), ...path.split("/"));
}

/** Whether `snapshots/<commit>/<path>` exists and resolves to a file. */
export async function isCached(storage: string, commit: string, path: string): Promise<boolean> {
  return pathExists(cachedPath(storage, commit, path)); // a dangling snapshot link counts as missing
}

/** Whether the cache records that `path` does not exist at `commit` (`.no_exist/<commit>/<path>`). */
export async function isMarkedMissing(storage: string, commit: string, path: string): Promise<boolean> {
  checkRepoPath(path, storage);
  return pathExists(join(storage, ".no_exist", commit, ...path.split("/")));
}

export async function markMissing(storage: string, commit: string, path: string): Promise<void> {
  checkRepoPath(path, storage);
  const file = join(storage, ".no_exist", commit, ...path.split("/"));
  await mkdir(dirname(file), { recursive: true });
  await writeFileAtomic(file, "");
}

export function blobPath(storage: string, hash: string): string {
  if (!/^[0-9a-f]{40}$|^[0-9a-f]{64}$/.test(hash)) {
    throw new HippoError("INVALID_FORMAT", "blob name is not a sha1 or sha256", {
      file: storage,
      got: JSON.stringify(hash.slice(0, 80)),
    });
  }
  return join(storage, "blobs", hash);
}

/**
 * Point `snapshots/<commit>/<path>` at `blobs/<hash>` with a relative symlink, replacing any previous link
 * atomically (a temporary link renamed over it). Where symlinks are not allowed the blob is copied, as Python does.
 */
export async function linkBlob(storage: string, commit: string, path: string, hash: string): Promise<string> {
  const blob = blobPath(storage, hash);
  const pointer = cachedPath(storage, commit, path);
  await mkdir(dirname(pointer), { recursive: true });
  const tmp = join(
    dirname(pointer),
    `.${hash.slice(0, 16)}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`,
  );
  try {
    try {
      await symlink(relative(dirname(pointer), blob), tmp);
    } catch {
      await copyFile(blob, tmp);
    }
    await rename(tmp, pointer);
  } catch (e) {
    await rm(tmp, { force: true });
    throw new HippoError("IO", `could not link ${pointer}: ${(e as Error).message}`, {
      file: pointer,
      cause: e,
    });
  }
  return pointer;
}

/** Git's blob id: sha1 of `blob <size>\0` + content; the name of a non-LFS file's blob. */
export function gitBlobSha1(content: Uint8Array): string {
  return createHash("sha1").update(`blob ${content.byteLength}\0`).update(content).digest("hex");
}

export function sha256Hex(content: Uint8Array): string {
  return createHash("sha256").update(content).digest("hex");
}

/** Size of a file, or undefined when it does not exist. */
export async function fileSize(path: string): Promise<number | undefined> {
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}
