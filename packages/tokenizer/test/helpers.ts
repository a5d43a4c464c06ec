import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gunzipSync } from "node:zlib";

/** The shared data folder beside the repository (CI clones the repo with `shared/` next to it). */
export const DATA = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
export const LLAMA2 = `${DATA}tokenizers/llama2`;
export const MISTRAL = `${DATA}tokenizers/mistral-7b-v0.1`;
export const MEDQA = `${DATA}benchmarks/medqa/medqa_us_4options_test.jsonl`;
export const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));

export interface MedQaRow {
  question: string;
  options: Record<string, string>;
  answer_idx: string;
}

export function readMedQa(): MedQaRow[] {
  return readFileSync(MEDQA, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as MedQaRow);
}

/** Lines of a gzipped JSONL fixture, parsed. */
export function readJsonlGz(file: string): unknown[] {
  return gunzipSync(readFileSync(file))
    .toString("utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as unknown);
}
