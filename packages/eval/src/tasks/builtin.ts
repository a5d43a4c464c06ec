/**
 * The built-in tasks. Formats are copied from their sources (cited per task); paths are relative to the
 * data dir (`--data-dir`, laid out as `../shared/data`).
 *
 * v0.3 tasks follow the authors' fork of lm-evaluation-harness (emrecanacikgoz/lm-evaluation-harness,
 * `lm_eval/tasks/{medqa_usmle,medmcqa,usmle_self_eval_step*}.py` and upstream v0.3 `pubmedqa.py`).
 * Current-harness tasks follow EleutherAI's YAML tasks (`medqa/medqa.yaml` + `preprocess_medqa.py`,
 * `medmcqa/medmcqa.yaml` + `utils_medmcqa.py`, `mmlu/default/_default_template_yaml`, `pubmedqa/pubmedqa.yaml`).
 */
import { join } from "node:path";
import {
  fileExists,
  LETTERS,
  loadLetterOptionsJsonl,
  loadMedmcqa,
  loadMmluCsv,
  loadPubmedqa,
  loadPubmedqaTest500,
} from "./loaders.js";
import type { EvalDoc, TaskData, TaskDefinition, TaskGroup } from "./types.js";

/** Python's `str.strip()` (whitespace as `str.isspace`), for the current harness's `question.strip()`. */
const PY_SPACE = new Set([
  0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000, 0x2001, 0x2002,
  0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000,
]);

export function pyStrip(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && PY_SPACE.has(s.charCodeAt(a))) a++;
  while (b > a && PY_SPACE.has(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** The fork's query: `question + "\n" + "(A) a (B) b ..."`. */
export function v03Query(doc: EvalDoc): string {
  return `${doc.question}\n${doc.options.map((o, i) => `(${LETTERS[i]}) ${o}`).join(" ")}`;
}

/** `Question: {query}\nAnswer:` (the fork's `doc_to_text`). */
export function v03McText(doc: EvalDoc): string {
  return `Question: ${v03Query(doc)}\nAnswer:`;
}

export function pubmedqaText(doc: EvalDoc): string {
  return `Abstract: ${(doc.contexts ?? []).join("\n")}\nQuestion: ${doc.question}\nAnswer:`;
}

const optionTexts = (doc: EvalDoc) => doc.options;
const letters = (doc: EvalDoc) => doc.options.map((_, i) => LETTERS[i] as string);

async function withOptionalTrain(
  test: EvalDoc[],
  trainPath: string,
  load: (p: string) => Promise<EvalDoc[]>,
): Promise<TaskData> {
  const data: TaskData & { trainPath?: string } = { test, trainPath };
  if (await fileExists(trainPath)) data.train = await load(trainPath);
  return data;
}

const MEDQA4 = "benchmarks/medqa/medqa_us_4options_test.jsonl";
const MEDQA4_TRAIN = "benchmarks/medqa/medqa_us_4options_train.jsonl";
const MEDQA5 = "benchmarks/medqa/medqa_us_5options_test.jsonl";
const MEDQA5_TRAIN = "benchmarks/medqa/medqa_us_5options_train.jsonl";
const MEDMCQA = "benchmarks/medmcqa/medmcqa_validation_4183.jsonl";
const MEDMCQA_TRAIN = "benchmarks/medmcqa/medmcqa_train.jsonl";
const PQAL = "benchmarks/pubmedqa/ori_pqal.json";
const PQA_TEST = "benchmarks/pubmedqa/test_ground_truth.json";
export const USMLE_FILES = {
  usmle_step1: "benchmarks/usmle/usmle_self_eval_step1.jsonl",
  usmle_step2: "benchmarks/usmle/usmle_self_eval_step2.jsonl",
  usmle_step3: "benchmarks/usmle/usmle_self_eval_step3.jsonl",
} as const;

const FORK = "emrecanacikgoz/lm-evaluation-harness";

function v03Mc(
  name: string,
  source: string,
  load: (dataDir: string) => Promise<TaskData>,
  fewshot: "train" | "test",
): TaskDefinition {
  return {
    name,
    version: 0,
    load,
    docToText: v03McText,
    docToChoices: optionTexts,
    targetDelimiter: " ",
    fewshot,
    metrics: ["acc", "acc_norm"],
    source,
  };
}

export const medqaUsmle = v03Mc(
  "medqa_usmle",
  `${FORK} lm_eval/tasks/medqa_usmle.py (augtoma/medqa_usmle, 4 options)`,
  async (d) =>
    withOptionalTrain(await loadLetterOptionsJsonl(join(d, MEDQA4)), join(d, MEDQA4_TRAIN), (p) =>
      loadLetterOptionsJsonl(p),
    ),
  "train",
);

export const medqaUsmle5 = v03Mc(
  "medqa_usmle_5options",
  `${FORK} lm_eval/tasks/medqa_usmle.py format on the 5-option MedQA test set`,
  async (d) =>
    withOptionalTrain(await loadLetterOptionsJsonl(join(d, MEDQA5)), join(d, MEDQA5_TRAIN), (p) =>
      loadLetterOptionsJsonl(p),
    ),
  "train",
);

export const medmcqa = v03Mc(
  "medmcqa",
  `${FORK} lm_eval/tasks/medmcqa.py (augtoma/medmcqa "test" = official dev split)`,
  async (d) => withOptionalTrain(await loadMedmcqa(join(d, MEDMCQA)), join(d, MEDMCQA_TRAIN), loadMedmcqa),
  "train",
);

function usmle(name: keyof typeof USMLE_FILES): TaskDefinition {
  return v03Mc(
    name,
    `${FORK} lm_eval/tasks/usmle_self_eval_${name.slice(-5)}.py (augtoma/usmle_self_eval_${name.slice(-5)})`,
    async (d) => ({
      test: await loadLetterOptionsJsonl(join(d, USMLE_FILES[name]), { dropNullOptions: true }),
    }),
    "test",
  );
}
export const usmleStep1 = usmle("usmle_step1");
export const usmleStep2 = usmle("usmle_step2");
export const usmleStep3 = usmle("usmle_step3");

function pubmedqaTask(
  name: string,
  load: (dataDir: string) => Promise<TaskData>,
  source: string,
): TaskDefinition {
  return {
    name,
    version: 0,
    load,
    docToText: pubmedqaText,
    docToChoices: optionTexts,
    targetDelimiter: " ",
    fewshot: "test",
    metrics: ["acc"],
    // The harness compares raw HF rows; their PMIDs are unique.
    docKey: (doc) => doc.id,
    source,
  };
}

export const pubmedqa = pubmedqaTask(
  "pubmedqa",
  async (d) => ({ test: await loadPubmedqa(join(d, PQAL)) }),
  "EleutherAI/lm-evaluation-harness v0.3.0 lm_eval/tasks/pubmedqa.py (pubmed_qa pqa_labeled, all 1,000 rows)",
);

export const pubmedqaTest500 = pubmedqaTask(
  "pubmedqa_test500",
  async (d) => ({ test: await loadPubmedqaTest500(join(d, PQAL), join(d, PQA_TEST)) }),
  "pubmedqa format on the official 500-PMID test split (test_ground_truth.json order)",
);

// ---------------------------------------------------------------------------------------------------------
// Current EleutherAI harness (multimedqa).

export const medqa4options: TaskDefinition = {
  name: "medqa_4options",
  version: 1,
  load: async (d) =>
    withOptionalTrain(await loadLetterOptionsJsonl(join(d, MEDQA4)), join(d, MEDQA4_TRAIN), (p) =>
      loadLetterOptionsJsonl(p),
    ),
  docToText: (doc) =>
    `Question: ${doc.question}\n${doc.options.map((o, i) => `${LETTERS[i]}. ${o}\n`).join("")}Answer:`,
  docToChoices: letters,
  targetDelimiter: " ",
  fewshot: "train",
  metrics: ["acc", "acc_norm"],
  source: "EleutherAI/lm-evaluation-harness lm_eval/tasks/medqa/medqa.yaml + preprocess_medqa.py",
};

export const medmcqaCurrent: TaskDefinition = {
  name: "medmcqa",
  version: 1,
  load: async (d) =>
    withOptionalTrain(await loadMedmcqa(join(d, MEDMCQA)), join(d, MEDMCQA_TRAIN), loadMedmcqa),
  docToText: (doc) =>
    `Question: ${doc.question}\nChoices:\n${doc.options.map((o, i) => `${LETTERS[i]}. ${o}\n`).join("")}Answer:`,
  docToChoices: letters,
  targetDelimiter: " ",
  fewshot: "train",
  metrics: ["acc", "acc_norm"],
  source: "EleutherAI/lm-evaluation-harness lm_eval/tasks/medmcqa/medmcqa.yaml + utils_medmcqa.py",
};

export const MMLU_MEDICAL_SUBJECTS = [
  "anatomy",
  "clinical_knowledge",
  "college_biology",
  "college_medicine",
  "medical_genetics",
  "professional_medicine",
] as const;

export function mmluTask(subject: string): TaskDefinition {
  return {
    name: `mmlu_${subject}`,
    version: 1,
    load: async (d) => ({
      test: await loadMmluCsv(join(d, `benchmarks/mmlu_medical/test/${subject}_test.csv`), subject),
      dev: await loadMmluCsv(join(d, `benchmarks/mmlu_medical/dev/${subject}_dev.csv`), subject),
    }),
    description: `The following are multiple choice questions (with answers) about ${subject.replaceAll("_", " ")}.\n\n`,
    docToText: (doc) =>
      `${pyStrip(doc.question)}\n${doc.options.map((o, i) => `${LETTERS[i]}. ${o}`).join("\n")}\nAnswer:`,
    docToChoices: letters,
    targetDelimiter: " ",
    fewshot: "dev_first_k",
    metrics: ["acc"],
    source:
      "EleutherAI/lm-evaluation-harness lm_eval/tasks/mmlu/default/_default_template_yaml (first_n sampler on dev)",
  };
}

export const multimedqa: TaskGroup = {
  name: "multimedqa",
  tasks: ["pubmedqa", "medmcqa", "medqa_4options", ...MMLU_MEDICAL_SUBJECTS.map((s) => `mmlu_${s}`)],
};
