/**
 * `hippo miniature`: write everything the miniature pipeline reads into one folder, then run it.
 *
 *   DIR/data/{cpt,sft,dpo}.jsonl     the training sets (TextDocument / InstructionRecord / PreferenceRecord)
 *   DIR/data/test.jsonl              the held-out 4-option test, + miniature_mcq.json (an eval task file)
 *   DIR/tokenizer/                   a word-level HF tokenizer over the knowledge base's words
 *   DIR/base-model/                  a random Llama from pipelines/miniature-model.json (HF folder)
 *   DIR/pipeline.yaml                pipelines/miniature.yaml (or the one given)
 *   DIR/run/                         the run folder: manifest.json, stages, report.html
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { HippoError, parseJsonSafe, writeFileAtomic, writeJsonAtomic } from "@hippocrates/core";
import type { Backend } from "../config/schema.js";
import { allText, buildDatasets, type DatasetOptions, generateKnowledgeBase } from "./kb.js";
import { writeTokenizerFolder } from "./tokenizer.js";

export const MINIATURE_PIPELINE = fileURLToPath(new URL("../../pipelines/miniature.yaml", import.meta.url));
export const MINIATURE_MODEL_CONFIG = fileURLToPath(
  new URL("../../pipelines/miniature-model.json", import.meta.url),
);

export interface PrepareOptions extends DatasetOptions {
  seed?: number;
  diseases?: number;
  /** Pipeline YAML to copy (default pipelines/miniature.yaml). */
  pipeline?: string;
  /** Model config JSON (default pipelines/miniature-model.json). */
  modelConfig?: string;
  backend?: Backend;
  log?: (m: string) => void;
}

export interface PrepareResult {
  pipeline: string;
  counts: { cpt: number; sft: number; dpo: number; test: number; vocab: number };
}

const jsonl = (rows: unknown[]) => `${rows.map((r) => JSON.stringify(r)).join("\n")}\n`;

/**
 * A task file (the eval package's format) named `name`, over the multiple-choice questions of test.jsonl, its
 * few-shot examples drawn from the same file; `how` is how the choices are scored and prompted.
 */
async function writeTestTask(
  dataDir: string,
  name: string,
  how: { choices: "options" | "letters"; prompt: "v0.3" | "letters"; metrics: string[] },
): Promise<void> {
  await writeJsonAtomic(join(dataDir, `${name}.json`), {
    name,
    version: 0,
    files: { test: "test.jsonl" },
    fields: { question: "question", options: "options", answer: "gold" },
    choices: how.choices,
    prompt: how.prompt,
    fewshot: "test",
    metrics: how.metrics,
  });
}

export async function prepareMiniature(dir: string, options: PrepareOptions = {}): Promise<PrepareResult> {
  const log = options.log ?? (() => {});
  const kb = generateKnowledgeBase({ seed: options.seed ?? 1234, diseases: options.diseases ?? 40 });
  const data = buildDatasets(kb, options);
  const dataDir = join(dir, "data");
  await writeFileAtomic(join(dataDir, "cpt.jsonl"), jsonl(data.cpt));
  await writeFileAtomic(join(dataDir, "sft.jsonl"), jsonl(data.sft));
  await writeFileAtomic(join(dataDir, "dpo.jsonl"), jsonl(data.dpo));
  await writeFileAtomic(join(dataDir, "test.jsonl"), jsonl(data.test));
  await writeJsonAtomic(join(dataDir, "knowledge-base.json"), kb);
  // The eval package's task-file format: the exam prompt of the authors' harness (`Question: ...\n(A) ...`).
  await writeTestTask(dataDir, "miniature_mcq", {
    choices: "options",
    prompt: "v0.3",
    metrics: ["acc", "acc_norm"],
  });
  // The same questions in the current harness's format (letters as the scored choices), a second task.
  await writeTestTask(dataDir, "miniature_letters", {
    choices: "letters",
    prompt: "letters",
    metrics: ["acc"],
  });
  const tokDir = join(dir, "tokenizer");
  const vocab = await writeTokenizerFolder(tokDir, allText(data));
  log(
    `knowledge base: ${kb.diseases.length} diseases; ${data.cpt.length} CPT paragraphs, ${data.sft.length} SFT questions, ${data.dpo.length} preference pairs, ${data.test.length} test questions; vocabulary ${vocab}`,
  );

  const configFile = options.modelConfig ?? MINIATURE_MODEL_CONFIG;
  const config = parseJsonSafe(await readFile(configFile, "utf8"), configFile) as Record<string, unknown>;
  // The model's vocabulary is exactly the tokenizer's (the config's value is a placeholder): an output row
  // without a token would be a token the model could sample but no one could decode.
  config.vocab_size = vocab;
  const modelDir = join(dir, "base-model");
  if (!existsSync(join(modelDir, "config.json"))) {
    const { initBackend } = await import("@hippocrates/backend");
    await initBackend({ backend: options.backend ?? "auto" });
    const { createRandomModel, saveModel } = await import("@hippocrates/model");
    const model = createRandomModel({ ...config }, { seed: options.seed ?? 1234 });
    try {
      await saveModel(model, modelDir);
    } finally {
      model.dispose();
    }
  }
  const pipelineSrc = options.pipeline ?? MINIATURE_PIPELINE;
  if (!existsSync(pipelineSrc))
    throw new HippoError("NOT_FOUND", "pipeline file not found", { file: pipelineSrc });
  const pipeline = join(dir, "pipeline.yaml");
  await writeFileAtomic(pipeline, await readFile(pipelineSrc, "utf8"));
  return {
    pipeline,
    counts: {
      cpt: data.cpt.length,
      sft: data.sft.length,
      dpo: data.dpo.length,
      test: data.test.length,
      vocab,
    },
  };
}
