/**
 * Tasks as data. A task says where its documents come from and how a document becomes a prompt and a set of
 * scored continuations; the protocol (document order, few-shot draws, BOS, truncation) belongs to the
 * profile (see `protocol.ts`), so the same task definition serves both profiles. Built-in tasks are task
 * files (`packages/eval/tasks/*.json`) read by the same loader as a user's (`taskfile.ts`).
 */
import type { HubOptions } from "@hippocrates/hub";

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

/** Where one split's documents came from on the Hugging Face Hub: what the results record. */
export interface DatasetSource {
  /** `org/name` as the task names it (`dataset_path`). */
  repo: string;
  /** `dataset_name`, or "default". */
  config: string;
  /** The split of the repository (`test`, `validation`, `dev`, ...). */
  split: string;
  /** The revision asked for (`dataset_kwargs.revision`, default `main`). */
  revision: string;
  /** The commit sha the files were read at. */
  commit: string;
  /** The data files, as paths inside the repository. */
  files: string[];
}

/** How `TaskDefinition.load` may find its documents besides the data folder. */
export interface TaskLoadOptions {
  /** Cache, endpoint, token, offline mode and progress for a task whose documents come from the Hub. */
  hub?: HubOptions;
  /**
   * Few-shot examples per prompt: with 0 a task does not fetch its few-shot split (MedMCQA's training split is
   * 180,000 rows). Default: every split the task has.
   */
  numFewshot?: number;
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
  /** The Hub dataset each split came from (absent for local files). */
  sources?: { test?: DatasetSource; train?: DatasetSource; dev?: DatasetSource };
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
  /**
   * Where the documents come from. A built-in task reads its benchmark files under `dataDir` (laid out as
   * `../shared/data`) when one is given, and its Hub dataset (`options.hub`) when not.
   */
  load(dataDir: string | undefined, options?: TaskLoadOptions): Promise<TaskData>;
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
