/**
 * Documented SFT mixtures. The paper's instruction set ("696K in all") combines general medical instruction
 * sets with "evaluation" instructions built from the benchmark train splits; the authors found MedQA-train
 * instructions alone worked best. The file names below are the names this project expects in a data folder;
 * download the public releases there (see README for where each comes from and its format).
 *
 * The per-source sizes in `referenceSize` are the sizes of the public releases of those sets, for orientation.
 * The paper's own per-source breakdown could not be checked here, so every source is taken whole
 * (`count: "all"`) and the manifest records the counts actually used; pin `count` per source to reproduce a
 * published breakdown exactly.
 */
import { join } from "node:path";
import type { MixtureSource } from "./sft.js";

export interface DocumentedSource extends MixtureSource {
  name: string;
  /** Size of the public release (records), for orientation; the manifest records what was actually read. */
  referenceSize?: number;
  /** Where the set is published. */
  origin: string;
}

export function paperMixture(dataDir: string): DocumentedSource[] {
  const s = (
    name: string,
    file: string,
    format: MixtureSource["format"],
    origin: string,
    referenceSize?: number,
  ): DocumentedSource => ({
    name,
    path: join(dataDir, file),
    format,
    count: "all",
    origin,
    referenceSize,
  });
  return [
    // General medical instructions (>400K in the paper).
    s(
      "medical_flashcards",
      "medical_meadow_flashcards.json",
      "alpaca",
      "medalpaca/medical_meadow_medical_flashcards",
      33955,
    ),
    s("genmedgpt", "GenMedGPT-5k.json", "alpaca", "ChatDoctor GenMedGPT-5k"),
    s("platypus", "open_platypus.jsonl", "alpaca", "garage-bAInd/Open-Platypus"),
    s("healthcaremagic", "HealthCareMagic-100k.json", "alpaca", "ChatDoctor HealthCareMagic-100k"),
    s("umls", "umls.jsonl", "alpaca", "UMLS-derived instructions (Hippocrates release)"),
    s("umls_relations", "umls_relations.jsonl", "alpaca", "UMLS relation instructions (Hippocrates release)"),
    s("wikidoc", "medical_meadow_wikidoc.json", "alpaca", "medalpaca/medical_meadow_wikidoc"),
    s(
      "wikidoc_patient_info",
      "medical_meadow_wikidoc_patient_information.json",
      "alpaca",
      "medalpaca/medical_meadow_wikidoc_patient_information",
    ),
    s("medicationqa", "medicationqa.jsonl", "alpaca", "MedicationQA (Ben Abacha et al.)"),
    // Evaluation instructions (benchmark train splits, Meditron-style templates).
    s("medmcqa_train", "medmcqa_train.json", "medmcqa", "MedMCQA train (medmcqa on HF)", 182822),
    s("medqa_train", "medqa_train.jsonl", "medqa", "MedQA-USMLE US 4-option train", 10178),
    s("pubmedqa_train", "pubmedqa_train.json", "pubmedqa", "PubMedQA pqa_artificial (ori_pqaa.json)", 211269),
  ];
}

/** The variant the authors found best: MedQA-train instructions only. */
export function medqaOnlyMixture(dataDir: string): DocumentedSource[] {
  return paperMixture(dataDir).filter((s) => s.name === "medqa_train");
}
