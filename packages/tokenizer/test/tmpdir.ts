import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A temporary model folder with a copy of `tokenizer.json` from `from` and the given extra files. */
export function makeFolder(from: string | null, files: Record<string, string | object>): string {
  const dir = mkdtempSync(join(tmpdir(), "hippo-tok-"));
  if (from !== null) copyFileSync(join(from, "tokenizer.json"), join(dir, "tokenizer.json"));
  for (const [name, content] of Object.entries(files)) {
    writeFileSync(join(dir, name), typeof content === "string" ? content : JSON.stringify(content));
  }
  return dir;
}

export function removeFolder(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
