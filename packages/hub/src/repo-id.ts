/**
 * Hub ids: `org/name` (or a canonical `name`), optionally `@revision`, checked with the rules of
 * `huggingface_hub.utils.validate_repo_id` (1.x): word characters, `-` and `.`, each part starting and ending with
 * a word character, no `--` or `..`, at most 96 characters, not ending in `.git`.
 */
import { HippoError } from "@hippocrates/core";

export type RepoType = "model" | "dataset";

export interface HubRef {
  /** `org/name`. */
  repo: string;
  /** Branch, tag, `refs/pr/N`, `refs/convert/parquet` or a 40-hex commit; undefined when not given. */
  revision: string | undefined;
}

const PART = /^\w(?:[\w.-]*\w)?$/;

/** Whether `repo` is a well-formed repository id (without `@revision`). */
export function isRepoId(repo: string): boolean {
  if (repo.length === 0 || repo.length > 96 || repo.includes("--") || repo.includes("..")) return false;
  if (repo.endsWith(".git")) return false;
  const parts = repo.split("/");
  return parts.length <= 2 && parts.every((p) => PART.test(p));
}

/**
 * `org/name@rev` -> `{ repo, revision }`; null when the text is not a Hub id (a path such as `./model`,
 * `/abs/dir` or `runs/a/b`).
 */
export function parseHubId(text: string): HubRef | null {
  const at = text.indexOf("@");
  const repo = at < 0 ? text : text.slice(0, at);
  const revision = at < 0 ? undefined : text.slice(at + 1);
  if (!isRepoId(repo)) return null;
  if (revision !== undefined && !isRevision(revision)) return null;
  return { repo, revision };
}

/** Git ref names as the Hub accepts them: no spaces, `..`, `~^:?*[\`, control characters or a leading `/`. */
export function isRevision(revision: string): boolean {
  return (
    revision.length > 0 &&
    revision.length <= 256 &&
    !revision.startsWith("/") &&
    !revision.endsWith("/") &&
    !revision.includes("..") &&
    !revision.includes("//") &&
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused here
    !/[\s~^:?*[\\\x00-\x1f\x7f]/.test(revision)
  );
}

export function isCommitSha(revision: string): boolean {
  return /^[0-9a-f]{40}$/.test(revision);
}

/** `org/name` + optional revision from an id string and an option; both given and different is an error. */
export function hubRef(id: string, revision: string | undefined): HubRef {
  const parsed = parseHubId(id);
  if (parsed === null) {
    throw new HippoError("INVALID_ARGUMENT", "not a Hugging Face Hub id", {
      got: JSON.stringify(id),
      expected: "org/name or org/name@revision",
    });
  }
  if (revision !== undefined && !isRevision(revision)) {
    throw new HippoError("INVALID_ARGUMENT", "not a valid revision", {
      key: "revision",
      got: JSON.stringify(revision),
      expected: "a branch, tag or commit sha",
    });
  }
  if (parsed.revision !== undefined && revision !== undefined && parsed.revision !== revision) {
    throw new HippoError(
      "INVALID_ARGUMENT",
      `${id} names revision ${parsed.revision} but the revision option is ${revision}`,
      {
        key: "revision",
      },
    );
  }
  return { repo: parsed.repo, revision: parsed.revision ?? revision };
}

/** `models--org--name` / `datasets--org--name`: the repository's folder in the cache. */
export function repoFolderName(repo: string, type: RepoType): string {
  return [`${type}s`, ...repo.split("/")].join("--");
}

/** The repository's page on the Hub (where access to a gated repository is requested). */
export function repoPageUrl(endpoint: string, repo: string, type: RepoType): string {
  return `${endpoint}/${type === "dataset" ? "datasets/" : ""}${repo}`;
}

/** `org/name@rev` for messages (`org/name` when the revision is the default). */
export function describeRef(repo: string, revision: string): string {
  return revision === "main" ? repo : `${repo}@${revision}`;
}
