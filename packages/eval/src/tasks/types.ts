/**
 * Tasks as data. A task says where its documents come from and how a document becomes a prompt and a set of
 * scored continuations; the protocol (document order, few-shot draws, BOS, truncation) belongs to the
 * profile (see `protocol.ts`), so the same task definition serves both profiles.
 */

/** One evaluation item, after loading. */
export interface EvalDoc {
  /** Stable id: the row index in the file, or the dataset's own id (PubMedQA's PMID). */
  id: string;
  question: string;
  /** Option texts in the dataset's order (null options already dropped). */
  options: string[];
  /** Index of the gold answer among the task's choices. */
  gold: number;
  /** PubMedQA: the abstract's context paragraphs. */
  contexts?: string[];
  /** Free-form extras (subject, meta_info, ...). */
  meta?: Record<string, unknown>;
}

export interface TaskData {
  test: EvalDoc[];
  /** Few-shot pool when the task has training documents. */
  train?: EvalDoc[];
  /** Few-shot pool for `first_k` tasks (MMLU's dev split). */
  dev?: EvalDoc[];
}

export type MetricName = "acc" | "acc_norm";

/**
 * Where few-shot examples come from:
 * - "train": a random sample of the training documents (medqa, medmcqa);
 * - "test": a random sample of k+1 test documents minus the current one, first k kept (pubmedqa, usmle);
 * - "dev_first_k": the first k documents of the dev split, in order (MMLU, as the current harness).
 */
export type FewshotSource = "train" | "test" | "dev_first_k";

export interface TaskDefinition {
  name: string;
  version: number;
  /** Where the documents come from; paths relative to `dataDir` (see each built-in). */
  load(dataDir: string): Promise<TaskData>;
  /** The prompt of one document, without a trailing space (e.g. `Question: ...\nAnswer:`). */
  docToText(doc: EvalDoc): string;
  /** The continuations scored for a document, without the target delimiter (option texts or letters). */
  docToChoices(doc: EvalDoc): string[];
  /** Text between the prompt and a continuation; " " everywhere here. */
  targetDelimiter: string;
  /** Prepended once before the few-shot examples (current-harness MMLU: "The following are ...\n\n"). */
  description?: string;
  fewshot: FewshotSource;
  metrics: MetricName[];
  /**
   * Key for "is this the same document" when the current document must be dropped from a few-shot draw. The
   * harness compares the processed docs by value (`x != doc`); the default key is the prompt text plus the
   * choices and the gold index, which is what those processed docs hold.
   */
  docKey?(doc: EvalDoc): string;
  /** Source of the format (file and commit), for the results' `configs`. */
  source?: string;
}

/** A named set of tasks whose metrics are also reported together, weighted by size. */
export interface TaskGroup {
  name: string;
  tasks: string[];
}
