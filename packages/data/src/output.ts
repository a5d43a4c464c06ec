/**
 * Output of the builders: JSONL files written inside a directory that appears atomically (core's
 * writeDirAtomic), and the manifest that describes how they were made. No timestamps go into the manifest, so
 * the same inputs, config and seed give byte-identical output.
 *
 * An output folder is never destroyed by accident: the new folder takes the place of an existing one only when
 * that one is empty or holds nothing but an earlier output of the same builder (its manifest.json names the
 * builder and lists every other file in it). Anything else is refused before any work is done, naming the
 * folder and what is in it, unless the caller passes `overwrite`; even then a path that is not a folder is
 * never replaced, nor a folder holding the current folder, the builder's inputs or `protect` (the config).
 */
import { open, realpath } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import {
  checkDirTarget,
  describeEntries,
  HippoError,
  isPlainObject,
  parseJsonSafe,
  readTextFile,
  writeDirAtomic,
} from "@hippocrates/core";
import type { BadRecordReport } from "./validate.js";

export interface SourceManifest {
  name: string;
  kind: string;
  path: string;
  sha256: string;
  bytes: number;
  /** Records read that passed validation. */
  records: number;
  /** Records taken into the output after de-duplication, decontamination and sampling. */
  kept: number;
  [extra: string]: unknown;
}

export type Builder = "cpt" | "sft" | "preference";

export interface Manifest {
  /** Which builder wrote the folder; an existing folder is replaced only by the same builder. */
  builder: Builder;
  formatVersion: 1;
  seed: number;
  config: Record<string, unknown>;
  sources: SourceManifest[];
  counts: Record<string, number>;
  badRecords: BadRecordReport;
  /** Every file of the folder besides manifest.json. */
  outputs: Record<string, { records: number; sha256: string; bytes: number }>;
  [extra: string]: unknown;
}

/** How a builder may treat an existing outDir (the builders' `overwrite` and `protect` options). */
export interface OutputPolicy {
  /** Replace an outDir that holds other files (never a file, the current folder, the inputs or `protect`). */
  overwrite?: boolean;
  /** More paths an outDir must not hold, besides the builder's inputs: the config file, the tokenizer. */
  protect?: string[];
}

/** Where a builder writes and what it must not destroy. */
export interface DatasetTarget extends OutputPolicy {
  builder: Builder;
  outDir: string;
  /** The builder's input files. */
  inputs: string[];
}

const real = (p: string): Promise<string> => realpath(resolve(p)).catch(() => resolve(p));

function isInside(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
}

/** The entries of `dir` that an earlier output of `builder` does not account for (all of them without one). */
async function foreignEntries(dir: string, entries: string[], builder: Builder): Promise<string[]> {
  let manifest: unknown;
  try {
    const file = join(dir, "manifest.json");
    manifest = parseJsonSafe(await readTextFile(file), file);
  } catch {
    return entries;
  }
  if (!isPlainObject(manifest) || manifest.builder !== builder || !isPlainObject(manifest.outputs))
    return entries;
  const own = new Set(["manifest.json", ...Object.keys(manifest.outputs)]);
  return entries.filter((e) => !own.has(e));
}

function mayReplace(t: DatasetTarget) {
  return async (dir: string, entries: string[]): Promise<void> => {
    const guarded: [string, string][] = [
      [process.cwd(), "the current folder"],
      ...t.inputs.map((p): [string, string] => [p, "an input of this build"]),
      ...(t.protect ?? []).map((p): [string, string] => [p, "a file this command reads"]),
    ];
    for (const [p, what] of guarded)
      if (isInside(await real(p), dir))
        throw new HippoError(
          "INVALID_ARGUMENT",
          `refusing to replace this folder: it holds ${what} (${p}), which would go with it; give outDir a folder of its own`,
          { file: dir, key: "outDir" },
        );
    const foreign = await foreignEntries(dir, entries, t.builder);
    if (foreign.length === 0 || t.overwrite) return;
    throw new HippoError(
      "INVALID_ARGUMENT",
      `refusing to replace this folder: it holds ${describeEntries(foreign)}, which no earlier \`${t.builder}\` ` +
        "output there lists in its manifest.json; choose a new or empty outDir, or pass --overwrite " +
        "(overwrite: true) to replace the folder and everything in it",
      { file: dir, key: "outDir" },
    );
  };
}

/**
 * Check that `t.outDir` may receive the output, before the builder spends any time (or judge requests) on
 * it: throws the same HippoError writeDatasetDir would give at the end.
 */
export async function checkDatasetOutDir(t: DatasetTarget): Promise<void> {
  await checkDirTarget(t.outDir, { mayReplace: mayReplace(t) });
}

/** The input files of a builder of `sources` decontaminated against evaluation test files (CPT, SFT). */
export function sourceInputs(options: {
  sources: readonly { path: string }[];
  decontaminateAgainst?: readonly string[];
}): string[] {
  return [...options.sources.map((s) => s.path), ...(options.decontaminateAgainst ?? [])];
}

/**
 * The target of a build, checked (checkDatasetOutDir) before the builder spends any time on it; the builders'
 * `overwrite` and `protect` options with their defaults (no overwrite, nothing more to protect).
 */
export async function openDatasetTarget(
  builder: Builder,
  outDir: string,
  inputs: string[],
  policy: OutputPolicy,
): Promise<DatasetTarget> {
  const target: DatasetTarget = {
    builder,
    outDir,
    inputs,
    overwrite: policy.overwrite ?? false,
    protect: policy.protect ?? [],
  };
  await checkDatasetOutDir(target);
  return target;
}

/**
 * Build `outDir` atomically: `fill` writes its files into a temporary directory and returns the manifest,
 * which is written last as manifest.json. If `fill` throws, nothing appears at `outDir` (an existing one is
 * left as it was) and the temporary directory is removed. An existing outDir is replaced only as the module
 * comment says.
 */
export async function writeDatasetDir(
  t: DatasetTarget,
  fill: (tmpDir: string) => Promise<Manifest>,
): Promise<Manifest> {
  return writeDirAtomic(
    t.outDir,
    async (tmp) => {
      const manifest = await fill(tmp);
      const handle = await open(join(tmp, "manifest.json"), "wx", 0o644);
      try {
        await handle.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
      return manifest;
    },
    { mayReplace: mayReplace(t) },
  );
}
