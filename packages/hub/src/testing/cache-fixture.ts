/**
 * A Hub cache laid out exactly as Python's `huggingface_hub` (1.x `file_download.py`) writes it, for tests
 * that must find "a model Python already downloaded": `blobs/<sha256 or git sha1>`, `refs/<revision>` holding
 * the commit sha without a newline, `snapshots/<commit>/<path>` as relative symlinks into `blobs/`, and
 * optionally `.no_exist/<commit>/<path>` markers for files the Hub reported missing.
 */
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { repoFolderName } from "../repo-id.js";
import { type PreparedRepo, prepareRepo, type RepoSpec } from "./repo.js";

export interface CacheFixtureOptions {
  /** Revisions to write (default: all of the spec). */
  revisions?: string[];
  /** Only these paths of each revision (default: all), e.g. what a partial download left. */
  paths?: string[];
  /** Paths to record under `.no_exist/<commit>/`. */
  noExist?: string[];
  /** Skip `refs/<revision>` (a cache filled by commit sha only). */
  withoutRefs?: boolean;
}

export interface CachedRepo {
  repo: PreparedRepo;
  /** `<cacheDir>/models--org--name`. */
  storage: string;
  /** Commit sha per written revision. */
  commits: Record<string, string>;
  /** `snapshots/<commit>` of a revision. */
  snapshot(revision?: string): string;
}

function isPrepared(spec: RepoSpec | PreparedRepo): spec is PreparedRepo {
  return spec.revisions instanceof Map;
}

export async function writeCachedRepo(
  cacheDir: string,
  spec: RepoSpec | PreparedRepo,
  options: CacheFixtureOptions = {},
): Promise<CachedRepo> {
  const repo = isPrepared(spec) ? spec : prepareRepo(spec);
  const storage = join(cacheDir, repoFolderName(repo.id, repo.type));
  const commits: Record<string, string> = {};
  for (const [name, rev] of repo.revisions) {
    if (options.revisions !== undefined && !options.revisions.includes(name)) continue;
    commits[name] = rev.commit;
    for (const file of rev.files.values()) {
      if (options.paths !== undefined && !options.paths.includes(file.path)) continue;
      const blob = join(storage, "blobs", file.etag);
      await mkdir(dirname(blob), { recursive: true });
      await writeFile(blob, file.bytes);
      const pointer = join(storage, "snapshots", rev.commit, ...file.path.split("/"));
      await mkdir(dirname(pointer), { recursive: true });
      await symlink(relative(dirname(pointer), blob), pointer);
    }
    for (const path of options.noExist ?? []) {
      const marker = join(storage, ".no_exist", rev.commit, ...path.split("/"));
      await mkdir(dirname(marker), { recursive: true });
      await writeFile(marker, "");
    }
    if (options.withoutRefs !== true && name !== rev.commit) {
      const ref = join(storage, "refs", ...name.split("/"));
      await mkdir(dirname(ref), { recursive: true });
      await writeFile(ref, rev.commit);
    }
  }
  return {
    repo,
    storage,
    commits,
    snapshot: (revision = "main") => join(storage, "snapshots", commits[revision] as string),
  };
}
