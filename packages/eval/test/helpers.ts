import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The shared data folder, resolved from the repo root (CI puts `shared/` beside the clone). */
export const DATA_DIR = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));

export function rawJsonl(rel: string): Record<string, unknown>[] {
  return readFileSync(DATA_DIR + rel, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}

export const pythonRandom = JSON.parse(
  readFileSync(new URL("./fixtures/python_random.json", import.meta.url), "utf8"),
);
