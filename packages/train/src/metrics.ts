/** Metrics as JSONL, one line per logged step; each line is appended and fsynced before training continues. */
import { open, readFile } from "node:fs/promises";
import { writeFileAtomic } from "@hippocrates/core";

export async function appendJsonl(path: string, record: Record<string, unknown>): Promise<void> {
  const handle = await open(path, "a");
  try {
    await handle.write(`${JSON.stringify(record)}\n`);
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

/** On resume: drop the lines logged after the checkpoint's step (they will be logged again), atomically. */
export async function truncateJsonlAfterStep(path: string, step: number): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return;
  }
  const kept = text.split("\n").filter((line) => {
    if (!line.trim()) return false;
    try {
      const rec = JSON.parse(line) as { step?: unknown };
      return typeof rec.step === "number" && rec.step <= step;
    } catch {
      return false; // a torn last line from a crash
    }
  });
  await writeFileAtomic(path, kept.map((l) => `${l}\n`).join(""));
}
