/**
 * Repositories made in a test: files per revision, with the ids the Hub gives them (git blob sha1 of the
 * content, or of the LFS pointer for LFS files, plus the LFS sha256) and a commit sha per revision. The loopback
 * Hub serves them and the cache fixture writes them in Python's layout, so both agree on every hash.
 */
import { createHash } from "node:crypto";
import { gitBlobSha1, sha256Hex } from "../cache.js";
import type { RepoType } from "../repo-id.js";

export interface RepoFileSpec {
  /** Path inside the repository (`/`-separated). */
  path: string;
  content: string | Uint8Array;
  /** Stored with Git LFS; default: by extension, as the Hub's default .gitattributes, or when over 10 MiB. */
  lfs?: boolean;
}

export interface RepoSpec {
  /** `org/name`. */
  id: string;
  /** Default `model`. */
  type?: RepoType;
  /** Files of `main`. */
  files?: RepoFileSpec[];
  /** Files of other revisions: branches, tags, `refs/pr/1`, `refs/convert/parquet`. */
  revisions?: Record<string, RepoFileSpec[]>;
  /** Gated (manual approval): metadata is public, downloads need an allowed token (401 without, 403 with another). */
  gated?: boolean;
  /** Private: invisible without an allowed token. */
  private?: boolean;
  /** Tokens that may download a gated or private repository. */
  allowedTokens?: string[];
  /** Former ids (a renamed repository): the Hub answers them with a redirect to this one. */
  aliases?: string[];
  /**
   * The commit sha of a revision, e.g. `{ main: "17af93..." }` for a test of a task that pins the real
   * repository's commit (default: a stable stand-in made from the files).
   */
  commits?: Record<string, string>;
}

export interface PreparedFile {
  path: string;
  bytes: Uint8Array;
  size: number;
  lfs: boolean;
  /** Git blob sha1: of the content, or of the LFS pointer file for LFS files (the tree API's `oid`). */
  oid: string;
  sha256: string;
  /** What Python names the blob and the Hub sends as (X-Linked-)ETag: sha256 for LFS, oid otherwise. */
  etag: string;
}

export interface PreparedRevision {
  name: string;
  commit: string;
  files: Map<string, PreparedFile>;
}

export interface PreparedRepo {
  spec: RepoSpec;
  id: string;
  type: RepoType;
  revisions: Map<string, PreparedRevision>;
}

/** Extensions the Hub's default .gitattributes puts in LFS (model and dataset repositories). */
const LFS_EXTENSIONS =
  /\.(7z|arrow|bin|bz2|ckpt|ftz|gz|h5|joblib|mlmodel|model|msgpack|npy|npz|onnx|ot|parquet|pb|pickle|pkl|pt|pth|rar|safetensors|tar|tflite|tgz|wasm|xz|zip|zst)$/;

const TEN_MIB = 10 * 1024 * 1024;

export function lfsPointer(sha256: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256}\nsize ${size}\n`;
}

export function prepareFile(spec: RepoFileSpec): PreparedFile {
  const bytes = typeof spec.content === "string" ? new TextEncoder().encode(spec.content) : spec.content;
  const lfs = spec.lfs ?? (LFS_EXTENSIONS.test(spec.path) || bytes.byteLength > TEN_MIB);
  const sha256 = sha256Hex(bytes);
  const oid = lfs
    ? gitBlobSha1(new TextEncoder().encode(lfsPointer(sha256, bytes.byteLength)))
    : gitBlobSha1(bytes);
  return { path: spec.path, bytes, size: bytes.byteLength, lfs, oid, sha256, etag: lfs ? sha256 : oid };
}

/** A stable stand-in for a commit sha: sha1 over the repository, revision name and file ids. */
function commitSha(id: string, revision: string, files: PreparedFile[]): string {
  const h = createHash("sha1").update(`commit ${id}\n${revision}\n`);
  for (const f of [...files].sort((a, b) => (a.path < b.path ? -1 : 1))) h.update(`${f.path} ${f.oid}\n`);
  return h.digest("hex");
}

export function prepareRepo(spec: RepoSpec): PreparedRepo {
  const revisions = new Map<string, PreparedRevision>();
  const all: Record<string, RepoFileSpec[]> =
    spec.files === undefined ? { ...spec.revisions } : { main: spec.files, ...spec.revisions };
  for (const [name, files] of Object.entries(all)) {
    const prepared = files.map(prepareFile);
    const commit = spec.commits?.[name] ?? commitSha(spec.id, name, prepared);
    if (!/^[0-9a-f]{40}$/.test(commit))
      throw new Error(`test repository ${spec.id}: commit of ${name} must be 40 hex digits, got ${commit}`);
    revisions.set(name, {
      name,
      commit,
      files: new Map(prepared.map((f) => [f.path, f])),
    });
  }
  return { spec, id: spec.id, type: spec.type ?? "model", revisions };
}
