/**
 * Published accuracies (%) of the Hippocrates paper's main table, 0-shot / 5-shot.
 * Source: Acikgoz et al., "Hippocrates: An Open-Source Framework for Advancing Large Language Models in
 * Healthcare", arXiv 2404.16621 (as transcribed in docs/hippocrates-spec.md, "Published results").
 * null = not published (BioMistral's 5-shot average).
 */

export const PUBLISHED_TASKS = [
  "medmcqa",
  "medqa_usmle",
  "pubmedqa",
  "usmle_step1",
  "usmle_step2",
  "usmle_step3",
] as const;
export type PublishedTask = (typeof PUBLISHED_TASKS)[number];

export const PUBLISHED_COLUMNS: Record<PublishedTask | "avg", string> = {
  medmcqa: "MedMCQA",
  medqa_usmle: "MedQA",
  pubmedqa: "PubMedQA",
  usmle_step1: "USMLE-1",
  usmle_step2: "USMLE-2",
  usmle_step3: "USMLE-3",
  avg: "avg",
};

export interface PublishedRow {
  model: string;
  /** [0-shot, 5-shot] per column. */
  scores: Record<PublishedTask | "avg", [number, number | null]>;
}

const row = (model: string, v: [number, number | null][]): PublishedRow => ({
  model,
  scores: {
    medmcqa: v[0] as [number, number],
    medqa_usmle: v[1] as [number, number],
    pubmedqa: v[2] as [number, number],
    usmle_step1: v[3] as [number, number],
    usmle_step2: v[4] as [number, number],
    usmle_step3: v[5] as [number, number],
    avg: v[6] as [number, number | null],
  },
});

export const PUBLISHED_SOURCE =
  "Hippocrates (arXiv 2404.16621), main results table; accuracy %, 0-shot/5-shot";

export const PUBLISHED_RESULTS: readonly PublishedRow[] = [
  row("Hippo-λ 7B", [
    [54.3, 53.9],
    [50.6, 50.8],
    [74.7, 76.6],
    [46.8, 40.4],
    [41.3, 39.5],
    [50.0, 43.4],
    [53.0, 50.8],
  ]),
  row("Hippo-μ 7B", [
    [49.7, 51.8],
    [59.2, 59.9],
    [77.1, 78.1],
    [60.6, 61.7],
    [66.1, 64.2],
    [56.6, 56.6],
    [61.6, 62.1],
  ]),
  row("Meditron 70B", [
    [43.4, 51.9],
    [44.9, 58.5],
    [76.4, 80.0],
    [35.1, 57.5],
    [41.3, 56.9],
    [37.7, 59.8],
    [46.5, 60.8],
  ]),
  row("LLaMA-2 70B", [
    [42.8, 52.0],
    [44.9, 56.1],
    [73.2, 77.8],
    [31.9, 59.6],
    [44.0, 57.8],
    [44.3, 53.3],
    [46.8, 59.4],
  ]),
  row("Mistral 7B", [
    [39.3, 48.5],
    [36.8, 48.9],
    [76.3, 77.8],
    [24.5, 50.0],
    [31.2, 42.2],
    [27.9, 43.4],
    [39.3, 51.8],
  ]),
  row("LLaMA-2 7B", [
    [34.4, 39.4],
    [29.3, 39.5],
    [72.3, 72.4],
    [18.1, 22.3],
    [22.9, 33.0],
    [27.1, 32.0],
    [34.0, 39.8],
  ]),
  row("Meditron 7B", [
    [34.0, 38.2],
    [32.0, 39.3],
    [71.6, 75.7],
    [16.0, 29.8],
    [25.7, 30.3],
    [23.8, 32.0],
    [33.9, 40.9],
  ]),
  row("BioMistral 7B", [
    [36.4, 42.4],
    [35.0, 42.1],
    [73.4, 75.1],
    [24.5, 28.7],
    [27.5, 34.9],
    [27.9, 44.3],
    [37.5, null],
  ]),
  row("PMC-LLaMA 7B", [
    [31.5, 33.0],
    [28.0, 29.5],
    [66.5, 68.4],
    [21.3, 19.2],
    [23.9, 19.3],
    [22.1, 22.1],
    [32.2, 31.9],
  ]),
];

/** The paper's zero-shot average over the six benchmarks after each stage, for both base models. */
export interface PublishedStage {
  /** The training stages applied to the base model: "base", "+CPT", "+SFT", "+CPT+SFT", "+CPT+SFT+DPO". */
  label: string;
  llama2: number;
  mistral: number;
}

/** Per-stage zero-shot averages (same source; Hippo-λ is Llama-2 "+CPT+SFT", Hippo-μ is Mistral "+SFT"). */
export const PUBLISHED_STAGES: readonly PublishedStage[] = [
  { label: "base", llama2: 34.0, mistral: 39.3 },
  { label: "+CPT", llama2: 34.4, mistral: 41.0 },
  { label: "+SFT", llama2: 50.3, mistral: 61.6 },
  { label: "+CPT+SFT", llama2: 53.0, mistral: 61.1 },
  { label: "+CPT+SFT+DPO", llama2: 52.5, mistral: 59.6 },
];
