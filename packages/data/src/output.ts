/**
 * Output of the builders: JSONL files written inside a directory that appears atomically (core's
 * writeDirAtomic), and the manifest that describes how they were made. No timestamps go into the manifest, so
 * the same inputs, config and seed give byte-identical output.
 */
import { createHash } from "node:crypto";
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { writeDirAtomic } from "@hippocrates/core";
import type { BadRecordReport } from "./validate.js";

export interface JsonlWriter {
  write(record: unknown): Promise<void>;
  /** Number of records written so far. */
  readonly count: number;
  /** Close without flushing (the build failed; the directory is being thrown away). */
  discard(): Promise<void>;
  /** Flush, fsync and close; returns the sha256 of the file's bytes. */
  close(): Promise<{ records: number; sha256: string; bytes: number }>;
}

/** A buffered JSONL writer (records are serialised with JSON.stringify, one per line). */
export async function createJsonlWriter(path: string, bufferBytes = 1 << 20): Promise<JsonlWriter> {
  const handle: FileHandle = await open(path, "wx", 0o644);
  const hash = createHash("sha256");
  let parts: string[] = [];
  let pending = 0;
  let count = 0;
  let bytes = 0;
  const flush = async () => {
    if (parts.length === 0) return;
    const buf = Buffer.from(parts.join(""), "utf8");
    parts = [];
    pending = 0;
    hash.update(buf);
    bytes += buf.byteLength;
    let off = 0;
    while (off < buf.byteLength) off += (await handle.write(buf, off, buf.byteLength - off)).bytesWritten;
  };
  return {
    get count() {
      return count;
    },
    async write(record) {
      const line = `${JSON.stringify(record)}\n`;
      parts.push(line);
      pending += line.length;
      count++;
      if (pending >= bufferBytes) await flush();
    },
    async discard() {
      parts = [];
      await handle.close().catch(() => {});
    },
    async close() {
      try {
        await flush();
        await handle.sync();
      } finally {
        await handle.close();
      }
      return { records: count, sha256: hash.digest("hex"), bytes };
    },
  };
}

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
