/**
 * Prompting variants of the authors' fork (branch of its pull request 1; files `lm_eval/tasks/*_{cot,sc,vot,er}.py`).
 * Still scored by log-likelihood: only the prompt changes. Texts copied from the stored files:
 *   medqa_usmle_cot @25ab383, medqa_usmle_sc @14481fc, medqa_usml_vot @1c15b1c, medqa_usmle_er @1c15b1c,
 *   medmcqa_cot @37bd0d4, medmcqa_sc @14481fc, medmcqa_vot @25ab383, medmcqa_er @25ab383,
 *   usmle_step1_{cot @37bd0d4, sc @14481fc, vot @604e79d, er @604e79d}, usmle_step2_cot @25ab383,
 *   usmle_step2_sc @14481fc, usmle_step3_cot @25ab383, usmle_step3_sc @14481fc,
 *   pubmedqa_{cot @25ab383, sc @14481fc, vot @1c15b1c, er @1c15b1c}.
 * Not read (assumed equal to usmle_step1's text, which every read file of the same variant matched):
 * usmle_step2_{vot,er}, usmle_step3_{vot,er}. Quirks kept on purpose: the "_sc" files write the query and
 * "Options:" without a newline between them; the "_cot" instruction ends ".:" and is followed by " " in
 * medmcqa_cot and usmle_step1_cot but by "\n" in the others.
 */
import { LETTERS } from "./loaders.js";
import type { EvalDoc, TaskDefinition } from "./types.js";

/** The fork's query: `question + "\n" + "(A) a (B) b ..."` (its `v0.3` prompt without `Question:`/`Answer:`). */
export function v03Query(doc: EvalDoc): string {
  return `${doc.question}\n${doc.options.map((o, i) => `(${LETTERS[i]}) ${o}`).join(" ")}`;
}

export type PromptVariant = "cot" | "sc" | "vot" | "er";
export const PROMPT_VARIANTS: readonly PromptVariant[] = ["cot", "sc", "vot", "er"];

const COT =
  "The following is a multiple choice question about medical knowledge. Solve it in a step-by-step fashion, starting by summarizing the available information. Output a single option from the four options as the final answer.:";
const SC =
  "The following is a multiple choice question about medical knowledge. Solve it in a step-by-step fashion, starting by summarizing the available information. Generate multiple consistent answers with explanations of the thinking process to ensure the reliability of the reasoning process. Compare the consistency across all chains to select the most accurate and consistent answer. Output a single option from the four options as the final answer.";
const VOT =
  "The following is a multiple choice question about medical knowledge. Verify the accuracy of the provided answer by comparing it against the given options and summarizing the reasoning step-by-step after creating premises.\nUse deductive verification to ensure each step is logically valid, based on the premises.\nOutput the verified option from the four options as the final answer.";
const ER =
  "The following is a multiple choice question about medical knowledge. Solve it in a step-by-step fashion, starting by summarizing the available information.\nProduce 11 generations of explanations and answers for the question. Then, provide a refined explanation and answer based on the original prompt, question, and the 11 generations.\nOutput a single option from the four options as the final answer.";
const PUBMED_COT =
  "The following is a question about medical knowledge. Solve it in a step-by-step fashion, starting by summarizing the available information. Output a single option from the three options as the final answer.";

/** Text before the query of a multiple-choice variant (instruction plus its separator). */
function mcPrefix(base: string, variant: PromptVariant): string {
  switch (variant) {
    case "cot":
      return COT + (base === "medmcqa" || base === "usmle_step1" ? " " : "\n");
    case "sc":
      return `${SC}\n`;
    case "vot":
      return `${VOT}\n`;
    case "er":
      return `${ER}\n`;
  }
}

export function variantMcText(base: string, variant: PromptVariant, doc: EvalDoc): string {
  const lines = doc.options.map((o, i) => `${LETTERS[i]}. ${o}`).join("\n");
  const between = variant === "sc" ? "" : "\n";
  return `${mcPrefix(base, variant)}${v03Query(doc)}${between}Options:\n${lines}\nAnswer:`;
}

export function variantPubmedqaText(variant: PromptVariant, doc: EvalDoc): string {
  const instruction = { cot: PUBMED_COT, sc: SC, vot: VOT, er: ER }[variant];
  return `Abstract: ${(doc.contexts ?? []).join("\n")}\n${instruction}:\n${doc.question}\nOptions: 'yes', 'no', 'maybe'\nAnswer:`;
}

/** `<base>_<variant>`: the base task with the variant's prompt. */
export function withVariant(base: TaskDefinition, variant: PromptVariant): TaskDefinition {
  const isPubmed = base.name.startsWith("pubmedqa");
  return {
    ...base,
    name: `${base.name}_${variant}`,
    docToText: isPubmed
      ? (doc) => variantPubmedqaText(variant, doc)
      : (doc) => variantMcText(base.name, variant, doc),
    source: `emrecanacikgoz/lm-evaluation-harness lm_eval/tasks/${base.name}_${variant}.py (PR 1 branch)`,
  };
}
