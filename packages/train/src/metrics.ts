/** Metrics as JSONL, one line per logged step; each line is appended and fsynced before training continues. */
import { existsSync } from "node:fs";
import { readJsonl, writeJsonlAtomic } from "@hippocrates/core";

/** On resume: drop the lines logged after the checkpoint's step (they will be logged again), atomically. */
export async function truncateJsonlAfterStep(path: string, step: number): Promise<void> {
  if (!existsSync(path)) return;
  const kept: unknown[] = [];
  // A torn last line from a crash, or any line that is not a step record, is dropped.
  const ignore = () => {};
  for await (const { value } of readJsonl(path, { onTornTail: ignore, onInvalidLine: ignore })) {
    const rec = value as { step?: unknown } | null;
    if (rec !== null && typeof rec === "object" && typeof rec.step === "number" && rec.step <= step)
      kept.push(value);
  }
  await writeJsonlAtomic(path, kept);
}
