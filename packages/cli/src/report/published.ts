/**
 * The published numbers this project reproduces (Hippocrates paper, arXiv 2404.16621; see
 * ../shared/docs/hippocrates-spec.md): per-stage zero-shot averages and the results table (accuracy %).
 */

export interface PublishedStage {
  label: string;
  llama2: number;
  mistral: number;
}

/** Per-stage zero-shot averages over the six benchmarks. */
export const PUBLISHED_STAGES: PublishedStage[] = [
  { label: "base", llama2: 34.0, mistral: 39.3 },
  { label: "+CPT", llama2: 34.4, mistral: 41.0 },
  { label: "+SFT", llama2: 50.3, mistral: 61.6 },
  { label: "+CPT+SFT", llama2: 53.0, mistral: 61.1 },
  { label: "+CPT+SFT+DPO", llama2: 52.5, mistral: 59.6 },
];

export const PUBLISHED_TASKS = [
  "medmcqa",
  "medqa_usmle",
  "pubmedqa",
  "usmle_step1",
  "usmle_step2",
  "usmle_step3",
] as const;
export const PUBLISHED_TASK_TITLES = ["MedMCQA", "MedQA", "PubMedQA", "USMLE-1", "USMLE-2", "USMLE-3"];

export interface PublishedRow {
  model: string;
  /** [0-shot, 5-shot] per task in PUBLISHED_TASKS order, then the average. */
  zeroShot: number[];
  fiveShot: (number | null)[];
}

const row = (model: string, cells: string): PublishedRow => {
  const pairs = cells.split(/\s+/).map((c) => c.split("/"));
  return {
    model,
    zeroShot: pairs.map((p) => Number(p[0])),
    fiveShot: pairs.map((p) => (p[1] === undefined || p[1] === "—" ? null : Number(p[1]))),
  };
};

/** The paper's results table: six benchmarks and the average, 0-shot/5-shot. */
export const PUBLISHED_ROWS: PublishedRow[] = [
  row("Hippo-λ 7B", "54.3/53.9 50.6/50.8 74.7/76.6 46.8/40.4 41.3/39.5 50.0/43.4 53.0/50.8"),
  row("Hippo-μ 7B", "49.7/51.8 59.2/59.9 77.1/78.1 60.6/61.7 66.1/64.2 56.6/56.6 61.6/62.1"),
  row("Meditron 70B", "43.4/51.9 44.9/58.5 76.4/80.0 35.1/57.5 41.3/56.9 37.7/59.8 46.5/60.8"),
  row("LLaMA-2 70B", "42.8/52.0 44.9/56.1 73.2/77.8 31.9/59.6 44.0/57.8 44.3/53.3 46.8/59.4"),
  row("Mistral 7B", "39.3/48.5 36.8/48.9 76.3/77.8 24.5/50.0 31.2/42.2 27.9/43.4 39.3/51.8"),
  row("LLaMA-2 7B", "34.4/39.4 29.3/39.5 72.3/72.4 18.1/22.3 22.9/33.0 27.1/32.0 34.0/39.8"),
  row("Meditron 7B", "34.0/38.2 32.0/39.3 71.6/75.7 16.0/29.8 25.7/30.3 23.8/32.0 33.9/40.9"),
  row("BioMistral 7B", "36.4/42.4 35.0/42.1 73.4/75.1 24.5/28.7 27.5/34.9 27.9/44.3 37.5/—"),
  row("PMC-LLaMA 7B", "31.5/33.0 28.0/29.5 66.5/68.4 21.3/19.2 23.9/19.3 22.1/22.1 32.2/31.9"),
];
