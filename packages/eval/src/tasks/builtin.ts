/**
 * The built-in tasks are task files shipped with the package (`packages/eval/tasks/<benchmark>/*.json`, laid
 * out as lm-evaluation-harness's `lm_eval/tasks/`), read through the same loader as a user's task file
 * (`parseTaskFile`). Each file cites the source of its format (the authors' v0.3 fork or the current harness,
 * with commits). The files are read once, synchronously, when a registry is created: they are package
 * assets, a few kilobytes.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decodeUtf8, parseJsonSafe } from "@hippocrates/core";
import { parseTaskFile, type TaskFileEntry } from "./taskfile.js";

/** The folder of the built-in task files (beside `src/` and `dist/` in the package). */
export const BUILTIN_TASKS_DIR = fileURLToPath(new URL("../../tasks/", import.meta.url));

export const MMLU_MEDICAL_SUBJECTS = [
  "anatomy",
  "clinical_knowledge",
  "college_biology",
  "college_medicine",
  "medical_genetics",
  "professional_medicine",
] as const;

function jsonFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap((e) =>
      e.isDirectory() ? jsonFiles(join(dir, e.name)) : e.name.endsWith(".json") ? [join(dir, e.name)] : [],
    );
}

/** Every built-in task and group, parsed from its file. */
export function readBuiltinTaskFiles(dir = BUILTIN_TASKS_DIR): TaskFileEntry[] {
  return jsonFiles(dir).map((file) =>
    parseTaskFile(parseJsonSafe(decodeUtf8(readFileSync(file), file), file), file),
  );
}
