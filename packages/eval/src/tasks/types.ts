/**
 * Tasks as data. A task says where its documents come from and how a document becomes a prompt and a set of
 * scored continuations; the protocol (document order, few-shot draws, BOS, truncation) belongs to the
 * profile (see `protocol.ts`), so the same task definition serves both profiles. Built-in tasks are task
 * files (`packages/eval/tasks/*.json`) read by the same loader as a user's (`taskfile.ts`).
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
  /** The record as its source file holds it: the `doc` of a samples file. */
  raw?: Record<string, unknown>;
}

export interface TaskData {
  test: EvalDoc[];
  /** Few-shot pool when the task has training documents. */
  train?: EvalDoc[];
  /** Few-shot pool for `first_k` tasks (MMLU's dev split). */
  dev?: EvalDoc[];
  /**
   * The file each split came from, or would have come from: a split whose optional file is missing (MedQA's
   * training split for 5-shot) is named here so that the error says which file to supply.
   */
  files?: { test?: string; train?: string; dev?: string };
}

export type MetricName = "acc" | "acc_norm";

/**
 * Where few-shot examples come from:
 * - "train": a random sample of the training documents (medqa, medmcqa; pubmedqa's fold-0 train split);
 * - "test": a random sample from the test documents minus the current one (pubmedqa v0.3, usmle);
 * - "dev_first_k": the first k documents of the dev split, in order (MMLU, the harness's `first_n` sampler).
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
  /**
   * What a samples file's `target` holds: the gold index (the default, as a harness `doc_to_target` that
   * returns an int: medqa, medmcqa, MMLU) or the gold choice's text (pubmedqa's `final_decision`).
   */
  target?: "index" | "text";
  /**
   * lm-evaluation-harness task-config keys describing the task's data (`dataset_path`, `dataset_name`,
   * `test_split`, ...), written into the results' `configs[task]` beside the prompt settings.
   */
  harnessConfig?: Record<string, unknown>;
}

/** How a group's metric is computed from its members' (lm-evaluation-harness `aggregate_metric_list`). */
export interface GroupMetric {
  metric: MetricName;
  /** Mean weighted by the members' document counts (true) or the plain mean of the members (false). */
  weightBySize: boolean;
}

/** A named set of tasks whose metrics are also reported together. */
export interface TaskGroup {
  name: string;
  tasks: string[];
  /** Display names of members (`task_alias` in the harness's group files). */
  aliases?: Record<string, string>;
  /** Default: acc and acc_norm, each weighted by size. */
  aggregate?: GroupMetric[];
  version?: number;
}
