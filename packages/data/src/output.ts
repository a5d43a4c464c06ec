/**
 * Output of the builders: JSONL files written inside a directory that appears atomically (core's
 * writeDirAtomic), and the manifest that describes how they were made. No timestamps go into the manifest, so
 * the same inputs, config and seed give byte-identical output.
 */
import { open } from "node:fs/promises";
import { join } from "node:path";
import { writeDirAtomic } from "@hippocrates/core";
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

export interface Manifest {
  builder: "cpt" | "sft" | "preference";
  formatVersion: 1;
  seed: number;
  config: Record<string, unknown>;
  sources: SourceManifest[];
  counts: Record<string, number>;
  badRecords: BadRecordReport;
  outputs: Record<string, { records: number; sha256: string; bytes: number }>;
  [extra: string]: unknown;
}

/**
 * Build `outDir` atomically: `fill` writes its files into a temporary directory and returns the manifest,
 * which is written last as manifest.json. If `fill` throws, nothing appears at `outDir` (an existing one is
 * left as it was) and the temporary directory is removed.
 */
export async function writeDatasetDir(
  outDir: string,
  fill: (tmpDir: string) => Promise<Manifest>,
): Promise<Manifest> {
  return writeDirAtomic(outDir, async (tmp) => {
    const manifest = await fill(tmp);
    const handle = await open(join(tmp, "manifest.json"), "wx", 0o644);
    try {
      await handle.writeFile(`${JSON.stringify(manifest, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return manifest;
  });
}
