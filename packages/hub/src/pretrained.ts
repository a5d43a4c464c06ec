/**
 * `resolvePretrained(nameOrPath, kind)`: the one place a model, tokenizer or adapter name becomes a folder.
 * A path that exists is used as it is; otherwise an `org/name[@rev]` Hub id is looked up in the cache (no
 * request when the snapshot has what the loader needs) and fetched when it is not: only the files that kind
 * of loader reads, safetensors only.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { HippoError, isPlainObject, parseJsonSafe } from "@hippocrates/core";
import { cachedPath, checkRepoPath, isCached, isMarkedMissing, readRef, snapshotDir } from "./cache.js";
import type { HubOptions } from "./env.js";
import { describeRef, parseHubId, type RepoType } from "./repo-id.js";
import {
  checkMetadataSize,
  type FetchPlan,
  fetchPlan,
  inSession,
  listRepo,
  type RemoteFile,
  resolveCommit,
  type Session,
} from "./session.js";

/**
 * What the caller will load, which decides the files fetched: a whole `model`, a `tokenizer`, an `adapter`,
 * or only a model's `config` (config.json and generation_config.json: what a pre-flight check reads without
 * downloading the weights).
 */
export type PretrainedKind = "model" | "tokenizer" | "adapter" | "config";

export interface ResolveOptions extends HubOptions {
  /** Branch, tag, `refs/pr/N` or commit sha; default `main` (or the `@rev` of the id). */
  revision?: string;
}

/** Where a Hub-resolved folder came from: what run manifests record. */
export interface HubSource {
  repo: string;
  type: RepoType;
  /** The revision asked for (`main` by default). */
  revision: string;
  /** The commit sha that revision resolved to. */
  commit: string;
}

export interface ResolvedPretrained {
  /** The folder to load from: the given path, or `<cache>/models--org--name/snapshots/<commit>`. */
  path: string;
  /** null for a local path. */
  hub: HubSource | null;
}

/** What each loader reads (transformers' file names). */
const FILES: Record<PretrainedKind, { required: string[]; optional: string[] }> = {
  model: { required: ["config.json"], optional: ["generation_config.json"] },
  tokenizer: {
    required: ["tokenizer.json"],
    optional: ["tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"],
  },
  adapter: { required: ["adapter_config.json", "adapter_model.safetensors"], optional: [] },
  config: { required: ["config.json"], optional: ["generation_config.json"] },
};

const SAFE_WEIGHTS = "model.safetensors";
const SAFE_INDEX = "model.safetensors.index.json";
const PICKLE = /\.(bin|pt|pth|ckpt|pkl|pickle)$/;

/**
 * A local path when one exists at `nameOrPath`; else a Hub id `org/name` or `org/name@rev` resolved through
 * the cache. Anything else (a missing path such as `./out` or `a/b/c`) is returned unchanged, so the loader
 * reports the missing file as it always has.
 */
export async function resolvePretrained(
  nameOrPath: string,
  kind: PretrainedKind,
  options: ResolveOptions = {},
): Promise<ResolvedPretrained> {
  if (existsSync(nameOrPath) || parseHubId(nameOrPath) === null) return { path: nameOrPath, hub: null };
  return inSession(nameOrPath, "model", options, (s) => resolveInSession(s, kind, options.refresh === true));
}

async function resolveInSession(
  s: Session,
  kind: PretrainedKind,
  refresh: boolean,
): Promise<ResolvedPretrained> {
  const source = (commit: string): ResolvedPretrained => ({
    path: snapshotDir(s.storage, commit),
    hub: { repo: s.repo, type: "model", revision: s.revision, commit },
  });
  const cachedCommit = await readRef(s.storage, s.revision);
  if (cachedCommit !== undefined && (!refresh || s.settings.offline)) {
    const missing = await firstMissing(s, cachedCommit, kind);
    if (missing === undefined) return source(cachedCommit);
    if (s.settings.offline) throw offlineMiss(s, missing);
  }
  if (s.settings.offline) {
    throw offlineMiss(s, cachedCommit === undefined ? `refs/${s.revision}` : FILES[kind].required[0]!);
  }
  const commit = await resolveCommit(s);
  const listing = await listRepo(s, commit);
  const plan = await planFiles(s, commit, kind, listing);
  await fetchPlan(s, commit, plan);
  return source(commit);
}

function offlineMiss(s: Session, missing: string): HippoError {
  return new HippoError(
    "NOT_FOUND",
    `${describeRef(s.repo, s.revision)} is not in the Hub cache and HF_HUB_OFFLINE is set: ${missing} is missing ` +
      `(revision ${s.revision}, cache ${s.storage}); run once with network access, or unset HF_HUB_OFFLINE`,
  );
}

/**
 * The first file the loader needs that the cached snapshot lacks, or undefined when it is complete. Offline,
 * optional files only need to be there if they are; online, each must be cached or recorded as absent, so a
 * snapshot another tool filled partly is completed instead of loaded without, say, its tokenizer_config.json.
 */
async function firstMissing(s: Session, commit: string, kind: PretrainedKind): Promise<string | undefined> {
  const { required, optional } = FILES[kind];
  for (const path of required) if (!(await isCached(s.storage, commit, path))) return path;
  if (kind === "model") {
    const weights = await missingWeights(s, commit);
    if (weights !== undefined) return weights;
  }
  if (!s.settings.offline) {
    for (const path of optional) {
      if (!(await isCached(s.storage, commit, path)) && !(await isMarkedMissing(s.storage, commit, path)))
        return path;
    }
  }
  return undefined;
}

async function missingWeights(s: Session, commit: string): Promise<string | undefined> {
  if (await isCached(s.storage, commit, SAFE_WEIGHTS)) return undefined;
  if (!(await isCached(s.storage, commit, SAFE_INDEX))) return SAFE_WEIGHTS;
  const indexFile = cachedPath(s.storage, commit, SAFE_INDEX);
  for (const shard of shardNames(parseJsonSafe(await readFile(indexFile, "utf8"), indexFile), indexFile)) {
    if (!(await isCached(s.storage, commit, shard))) return shard;
  }
  return undefined;
}

/** The shard files a `model.safetensors.index.json` names in its weight_map. */
function shardNames(index: unknown, where: string): string[] {
  const map = isPlainObject(index) ? index.weight_map : undefined;
  if (!isPlainObject(map) || Object.keys(map).length === 0) {
    throw new HippoError("INVALID_FORMAT", "safetensors index has no weight_map", {
      file: where,
      key: "weight_map",
      expected: "an object from tensor name to shard file",
    });
  }
  const shards = new Set<string>();
  for (const [tensor, file] of Object.entries(map)) {
    if (typeof file !== "string") {
      throw new HippoError("INVALID_FORMAT", "weight_map value must be a file name", {
        file: where,
        key: `weight_map.${tensor}`,
      });
    }
    checkRepoPath(file, where);
    shards.add(file);
  }
  return [...shards].sort();
}

function listingNames(listing: Map<string, RemoteFile>): string {
  const names = [...listing.keys()].sort();
  return names.length > 12
    ? `${names.slice(0, 12).join(", ")}, ... (${names.length} files)`
    : names.join(", ");
}

function pickleRefusal(s: Session, what: string, pickles: string[], safeName: string): HippoError {
  return new HippoError(
    "UNSUPPORTED",
    `${describeRef(s.repo, s.revision)} has ${what} only as pickle files (${pickles.slice(0, 4).join(", ")}), ` +
      `which can run code when loaded; Hippocrates.ts reads ${safeName} only. Use a revision that has it: many ` +
      "repositories have a safetensors conversion under refs/pr/N (pass org/name@refs/pr/N or --revision), " +
      "or convert the weights with https://huggingface.co/spaces/safetensors/convert",
    { file: describeRef(s.repo, s.revision), expected: safeName, got: pickles.slice(0, 4).join(", ") },
  );
}

/** The files to fetch for `kind` from the repository listing (the index is fetched first to find shards). */
async function planFiles(
  s: Session,
  commit: string,
  kind: PretrainedKind,
  listing: Map<string, RemoteFile>,
): Promise<FetchPlan> {
  const { required, optional } = FILES[kind];
  const files: RemoteFile[] = [];
  const missing: string[] = [];
  const where = describeRef(s.repo, s.revision);
  const pickles = [...listing.keys()].filter((p) => PICKLE.test(p));
  for (const path of required) {
    const f = listing.get(path);
    if (f !== undefined) {
      files.push(f);
      continue;
    }
    if (path === "adapter_model.safetensors" && pickles.length > 0)
      throw pickleRefusal(s, "adapter weights", pickles, path);
    throw new HippoError(
      "NOT_FOUND",
      `${where} has no ${path}, which a ${kind} needs` +
        (kind === "tokenizer" && listing.has("tokenizer.model")
          ? " (it has only the SentencePiece tokenizer.model; save the fast tokenizer with transformers' " +
            "AutoTokenizer.from_pretrained(...).save_pretrained(dir) and load that folder)"
          : ""),
      { file: where, expected: path, got: listingNames(listing) },
    );
  }
  for (const path of optional) {
    const f = listing.get(path);
    if (f === undefined) missing.push(path);
    else files.push(f);
  }
  if (kind === "model") {
    const single = listing.get(SAFE_WEIGHTS);
    const index = listing.get(SAFE_INDEX);
    if (single !== undefined) {
      // transformers tries model.safetensors before the index.
      files.push(single);
    } else if (index !== undefined) {
      checkMetadataSize(s, index, 64 * 2 ** 20);
      await fetchPlan(s, commit, { files: [index], missing: [SAFE_WEIGHTS] });
      const indexFile = cachedPath(s.storage, commit, SAFE_INDEX);
      files.push(index);
      for (const shard of shardNames(
        parseJsonSafe(await readFile(indexFile, "utf8"), indexFile),
        indexFile,
      )) {
        const f = listing.get(shard);
        if (f === undefined) {
          throw new HippoError("NOT_FOUND", `${where}: ${SAFE_INDEX} names a shard the repository lacks`, {
            file: `${where}: ${SAFE_INDEX}`,
            expected: shard,
            got: listingNames(listing),
          });
        }
        files.push(f);
      }
    } else if (pickles.length > 0) {
      throw pickleRefusal(s, "its weights", pickles, SAFE_WEIGHTS);
    } else {
      const other = [...listing.keys()].filter((p) => p.endsWith(".safetensors"));
      throw new HippoError(
        "NOT_FOUND",
        `${where} has no ${SAFE_WEIGHTS} or ${SAFE_INDEX}` +
          (other.length > 0
            ? ` (its safetensors files are not in the transformers layout: ${other.join(", ")})`
            : ""),
        { file: where, expected: `${SAFE_WEIGHTS} or ${SAFE_INDEX}`, got: listingNames(listing) },
      );
    }
  }
  return { files, missing };
}
