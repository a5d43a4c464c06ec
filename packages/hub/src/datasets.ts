/**
 * `fetchDatasetFiles(repo, { config, split, revision })`: a dataset repository's data files for one config and
 * split, fetched into the same cache as Python's (`datasets--org--name`), chosen the way the `datasets` library
 * chooses them (load.py / data_files.py, 2.x-4.x):
 *
 * 1. explicit `dataFiles` patterns, when given;
 * 2. on `refs/convert/parquet` (the Hub's parquet export), `<config>/<split>/*.parquet`;
 * 3. the README's YAML `configs:` list (`config_name`, `data_files`, `data_dir`, `default`);
 * 4. otherwise the default patterns: `data/<split>-NNNNN-of-NNNNN*.*`, then a split keyword in a folder name,
 *    then in a file name (`train`/`training`, `validation`/`valid`/`dev`/`val`, `test`/`testing`/`eval`/
 *    `evaluation`), then every file as `train`.
 *
 * A repository that is only a loading script (`name.py`) has no data files: the error points to its parquet
 * export. The files are returned as they are (parquet, JSON, JSON Lines, CSV); parsing is the caller's.
 */
import type { Dirent } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { extname, join, posix } from "node:path";
import { HippoError, isPlainObject } from "@hippocrates/core";
import { parse as parseYaml } from "yaml";
import { cachedPath, isCached, isMarkedMissing, readRef, snapshotDir } from "./cache.js";
import type { HubOptions } from "./env.js";
import { globFiles } from "./glob.js";
import { describeRef } from "./repo-id.js";
import {
  checkMetadataSize,
  fetchPlan,
  inSession,
  listRepo,
  type RemoteFile,
  resolveCommit,
  type Session,
} from "./session.js";

export type DataFormat = "parquet" | "json" | "jsonl" | "csv" | "tsv" | "txt" | "arrow";

const FORMATS: Record<string, DataFormat> = {
  ".parquet": "parquet",
  ".json": "json",
  ".jsonl": "jsonl",
  ".csv": "csv",
  ".tsv": "tsv",
  ".txt": "txt",
  ".arrow": "arrow",
};

/** Files the datasets library never takes as data (data_files.py FILES_TO_IGNORE). */
const FILES_TO_IGNORE = new Set([
  "README.md",
  "config.json",
  "dataset_info.json",
  "dataset_infos.json",
  "dummy_data.zip",
  "dataset_dict.json",
]);

export const PARQUET_EXPORT = "refs/convert/parquet";

export interface DatasetFilesOptions extends HubOptions {
  /** Dataset config (lm-evaluation-harness's `dataset_name`); default: the repository's default config. */
  config?: string;
  /** Split name, e.g. `test`, `validation`, `train`, `dev`. */
  split: string;
  /** Branch, tag, commit sha or `refs/convert/parquet`; default `main` (or the `@rev` of the id). */
  revision?: string;
  /** Glob patterns relative to the repository root that replace the README/default resolution. */
  dataFiles?: string | string[];
}

export interface DatasetFile {
  /** Path inside the repository. */
  path: string;
  /** Absolute path of the file in the cache snapshot. */
  localPath: string;
  /** From the extension; `json` files may hold JSON Lines (the datasets json builder reads both). */
  format: DataFormat;
}

export interface DatasetFiles {
  repo: string;
  revision: string;
  /** The commit sha the files were read at: record it with the results. */
  commit: string;
  config: string;
  split: string;
  /** The snapshot folder. */
  dir: string;
  /** In the order the datasets library concatenates them. */
  files: DatasetFile[];
}

/** Fetch (or find in the cache) the data files of one split of a dataset repository. */
export async function fetchDatasetFiles(repoId: string, options: DatasetFilesOptions): Promise<DatasetFiles> {
  if (typeof options.split !== "string" || options.split === "") {
    throw new HippoError("INVALID_ARGUMENT", "a dataset split is required", {
      key: "split",
      expected: "e.g. test",
    });
  }
  return inSession(repoId, "dataset", options, (s) => fetchInSession(s, options));
}

interface Selection {
  config: string;
  paths: string[];
}

function patternsOf(options: DatasetFilesOptions): string[] | undefined {
  if (options.dataFiles === undefined) return undefined;
  return typeof options.dataFiles === "string" ? [options.dataFiles] : options.dataFiles;
}

/** Whether the README must be read to choose the files. */
function needsReadme(s: Session, options: DatasetFilesOptions): boolean {
  return patternsOf(options) === undefined && s.revision !== PARQUET_EXPORT;
}

async function fetchInSession(s: Session, options: DatasetFilesOptions): Promise<DatasetFiles> {
  const result = (commit: string, sel: Selection): DatasetFiles => ({
    repo: s.repo,
    revision: s.revision,
    commit,
    config: sel.config,
    split: options.split,
    dir: snapshotDir(s.storage, commit),
    files: sel.paths.map((path) => ({
      path,
      localPath: cachedPath(s.storage, commit, path),
      format: FORMATS[extname(path).toLowerCase()] as DataFormat,
    })),
  });

  const cachedCommit = await readRef(s.storage, s.revision);
  if (cachedCommit !== undefined && (options.refresh !== true || s.settings.offline)) {
    const sel = await selectFromCache(s, cachedCommit, options);
    if (sel !== undefined && sel.paths.length > 0) return result(cachedCommit, sel);
  }
  if (s.settings.offline) {
    throw new HippoError(
      "NOT_FOUND",
      `dataset ${describeRef(s.repo, s.revision)} (config ${options.config ?? "default"}, split ${options.split}) ` +
        `is not in the Hub cache and HF_HUB_OFFLINE is set (revision ${s.revision}, cache ${s.storage}); ` +
        "run once with network access, or unset HF_HUB_OFFLINE",
    );
  }
  const commit = await resolveCommit(s);
  const listing = await listRepo(s, commit);
  let readme: string | undefined;
  if (needsReadme(s, options)) {
    const file = listing.get("README.md");
    if (file !== undefined) checkMetadataSize(s, file, 16 * 2 ** 20);
    await fetchPlan(s, commit, {
      files: file === undefined ? [] : [file],
      missing: file === undefined ? ["README.md"] : [],
    });
    if (file !== undefined) readme = await readFile(cachedPath(s.storage, commit, "README.md"), "utf8");
  }
  const sel = selectDataFiles(s, [...listing.keys()], readme, options);
  const files = sel.paths.map((p) => listing.get(p) as RemoteFile);
  await fetchPlan(s, commit, { files, missing: [] });
  return result(commit, sel);
}

/** Every file under the snapshot folder, as repository paths. */
async function walk(root: string, rel = ""): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(rel === "" ? root : join(root, ...rel.split("/")), { withFileTypes: true });
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const e of entries) {
    const path = rel === "" ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory()) out.push(...(await walk(root, path)));
    else out.push(path);
  }
  return out;
}

/** The selection the cached snapshot alone gives, or undefined when it cannot be trusted to be complete. */
async function selectFromCache(
  s: Session,
  commit: string,
  options: DatasetFilesOptions,
): Promise<Selection | undefined> {
  let readme: string | undefined;
  if (needsReadme(s, options)) {
    if (await isCached(s.storage, commit, "README.md")) {
      readme = await readFile(cachedPath(s.storage, commit, "README.md"), "utf8");
    } else if (!s.settings.offline && !(await isMarkedMissing(s.storage, commit, "README.md"))) {
      return undefined;
    }
  }
  const paths = await walk(snapshotDir(s.storage, commit));
  try {
    return selectDataFiles(s, paths, readme, options);
  } catch {
    return undefined; // e.g. the split's files are not cached: online, ask the Hub; offline, say what is missing
  }
}

// ---------------------------------------------------------------------------------------------------------
// The datasets library's data-file resolution.

const SPLIT_KEYWORDS: Record<string, string[]> = {
  train: ["train", "training"],
  validation: ["validation", "valid", "dev", "val"],
  test: ["test", "testing", "eval", "evaluation"],
};
const SEP = "-._ 0-9";
const SPLIT_PATTERN_SHARDED = "data/{split}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*";
const IN_FILENAME = ["**/{keyword}[{sep}]*", "**/*[{sep}]{keyword}[{sep}]*"];
const IN_DIR_NAME = [
  "**/{keyword}/**",
  "**/{keyword}[{sep}]*/**",
  "**/*[{sep}]{keyword}/**",
  "**/*[{sep}]{keyword}[{sep}]*/**",
];

function patternGroup(bases: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [split, keywords] of Object.entries(SPLIT_KEYWORDS)) {
    out[split] = keywords.flatMap((k) =>
      bases.map((b) => b.replaceAll("{keyword}", k).replaceAll("{sep}", SEP)),
    );
  }
  return out;
}

/** Candidate data files: not ignored by name, not hidden, with a data extension. */
function dataCandidates(paths: string[]): string[] {
  return paths.filter(
    (p) => !FILES_TO_IGNORE.has(posix.basename(p)) && FORMATS[extname(p).toLowerCase()] !== undefined,
  );
}

/** `_get_data_files_patterns`: the split -> patterns map of a repository without YAML configs. */
function defaultPatterns(paths: string[]): Record<string, string[]> {
  const sharded = globFiles([SPLIT_PATTERN_SHARDED.replace("{split}", "*")], paths);
  if (sharded.length > 0) {
    const out: Record<string, string[]> = {};
    for (const p of sharded) {
      const split = posix.basename(p).split("-")[0] as string;
      out[split] = [SPLIT_PATTERN_SHARDED.replace("{split}", split)];
    }
    return out;
  }
  for (const group of [patternGroup(IN_DIR_NAME), patternGroup(IN_FILENAME), { train: ["**"] }]) {
    const out: Record<string, string[]> = {};
    for (const [split, patterns] of Object.entries(group)) {
      if (patterns.some((pattern) => globFiles([pattern], paths).length > 0)) out[split] = patterns;
    }
    if (Object.keys(out).length > 0) return out;
  }
  return {};
}

interface YamlConfig {
  config_name?: unknown;
  data_files?: unknown;
  data_dir?: unknown;
  default?: unknown;
}

/** The `configs:` list of the README's YAML front matter (empty when there is none). */
function readmeConfigs(readme: string | undefined, where: string): YamlConfig[] {
  if (readme === undefined) return [];
  const m = /^---\r?\n([\s\S]*?)\r?\n---\s*(?:\r?\n|$)/.exec(readme);
  if (m === null) return [];
  let meta: unknown;
  try {
    meta = parseYaml(m[1] as string);
  } catch (e) {
    throw new HippoError(
      "INVALID_FORMAT",
      `README.md front matter is not valid YAML: ${(e as Error).message}`,
      {
        file: where,
      },
    );
  }
  const configs = isPlainObject(meta) ? meta.configs : undefined;
  if (!Array.isArray(configs)) return [];
  return configs.filter(isPlainObject) as YamlConfig[];
}

function asList(v: unknown, where: string, key: string): string[] {
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || !list.every((x) => typeof x === "string")) {
    throw new HippoError("INVALID_FORMAT", "data_files path must be a string or a list of strings", {
      file: where,
      key,
      got: JSON.stringify(v)?.slice(0, 80),
    });
  }
  return list;
}

/** `sanitize_patterns`: data_files as split -> patterns. */
function splitPatterns(dataFiles: unknown, where: string): Record<string, string[]> {
  if (typeof dataFiles === "string") return { train: [dataFiles] };
  if (isPlainObject(dataFiles)) {
    const out: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(dataFiles)) out[k] = asList(v, where, `data_files.${k}`);
    return out;
  }
  if (Array.isArray(dataFiles)) {
    if (dataFiles.every((x) => typeof x === "string")) return { train: dataFiles as string[] };
    const out: Record<string, string[]> = {};
    for (const [i, entry] of dataFiles.entries()) {
      if (!isPlainObject(entry) || typeof entry.split !== "string") {
        throw new HippoError("INVALID_FORMAT", "data_files entry must have a split and a path", {
          file: where,
          key: `data_files[${i}]`,
        });
      }
      out[entry.split] = asList(entry.path, where, `data_files[${i}].path`);
    }
    return out;
  }
  throw new HippoError("INVALID_FORMAT", "data_files must be a string, a list or split entries", {
    file: where,
    key: "data_files",
  });
}

function selectDataFiles(
  s: Session,
  allPaths: string[],
  readme: string | undefined,
  options: DatasetFilesOptions,
): Selection {
  const where = `dataset ${describeRef(s.repo, s.revision)}`;
  const paths = dataCandidates(allPaths);
  const split = options.split;
  let config = options.config ?? "default";
  let bySplit: Record<string, string[]>;
  const explicit = patternsOf(options);
  if (explicit !== undefined) {
    bySplit = { [split]: explicit };
  } else if (s.revision === PARQUET_EXPORT) {
    bySplit = { [split]: [`${config}/${split}/*.parquet`, `${config}/partial-${split}/*.parquet`] };
  } else {
    const script = allPaths.find((p) => !p.includes("/") && p.endsWith(".py"));
    if (paths.length === 0 && script !== undefined) {
      throw new HippoError(
        "UNSUPPORTED",
        `${where} is built by the loading script ${script}, which is not run here (Python code from the Hub); ` +
          `its parquet export is revision ${PARQUET_EXPORT}: pass that revision with the config and split`,
        { file: where, got: script },
      );
    }
    const configs = readmeConfigs(readme, `${where}: README.md`);
    if (configs.length > 0) {
      const chosen =
        options.config !== undefined
          ? configs.find((c) => c.config_name === options.config)
          : (configs.find((c) => c.default === true) ??
            configs.find((c) => c.config_name === "default") ??
            (configs.length === 1 ? configs[0] : undefined));
      if (chosen === undefined) {
        const names = configs.map((c) => String(c.config_name)).join(", ");
        throw new HippoError(
          "NOT_FOUND",
          options.config !== undefined
            ? `${where} has no config "${options.config}"`
            : `${where} has several configs and none is the default: name one`,
          { file: `${where}: README.md`, key: "configs", expected: names },
        );
      }
      config = String(chosen.config_name ?? "default");
      const dataDir = typeof chosen.data_dir === "string" ? chosen.data_dir.replace(/\/+$/, "") : undefined;
      if (chosen.data_files !== undefined) bySplit = splitPatterns(chosen.data_files, `${where}: README.md`);
      else {
        const inDir = dataDir === undefined ? paths : paths.filter((p) => p.startsWith(`${dataDir}/`));
        const rel = dataDir === undefined ? inDir : inDir.map((p) => p.slice(dataDir.length + 1));
        bySplit = Object.fromEntries(
          Object.entries(defaultPatterns(rel)).map(([k, v]) => [
            k,
            dataDir === undefined ? v : v.map((p) => `${dataDir}/${p}`),
          ]),
        );
      }
    } else {
      if (options.config !== undefined && options.config !== "default") {
        throw new HippoError(
          "NOT_FOUND",
          `${where} has no config "${options.config}" (its README declares none)`,
          {
            file: `${where}: README.md`,
            key: "configs",
          },
        );
      }
      bySplit = defaultPatterns(paths);
    }
  }
  const patterns = bySplit[split];
  if (patterns === undefined) {
    throw new HippoError("NOT_FOUND", `${where} config "${config}" has no split "${split}"`, {
      key: "split",
      expected: Object.keys(bySplit).join(", ") || "a data file",
      got: split,
    });
  }
  const files = globFiles(patterns, paths);
  if (files.length === 0) {
    throw new HippoError("NOT_FOUND", `${where} config "${config}" split "${split}" matches no data file`, {
      key: "data_files",
      expected: patterns.join(", "),
    });
  }
  return { config, paths: files };
}
