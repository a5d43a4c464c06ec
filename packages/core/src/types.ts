/**
 * The types the stages speak to each other. Implementations live in the other packages; anything that
 * satisfies these shapes (a user's own tokenizer, model, scorer or stage) can take their place.
 */
import type { StandardSchemaV1 } from "@standard-schema/spec";
import { isPlainObject } from "./json.js";
import type { ProgressReporter } from "./progress.js";

export type { StandardSchemaV1 };

// ---------------------------------------------------------------------------------------------------------
// Model configuration: the HF `config.json` of a Llama or Mistral checkpoint, with HF's key names so that a
// config round-trips unchanged.

export interface RopeScaling {
  rope_type?: "default" | "linear" | "llama3" | string;
  /** Older configs use `type` instead of `rope_type`. */
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

export interface ModelConfig {
  model_type: "llama" | "mistral";
  architectures?: string[];
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  hidden_act: "silu" | string;
  max_position_embeddings: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling?: RopeScaling | null;
  sliding_window?: number | null;
  tie_word_embeddings: boolean;
  attention_bias?: boolean;
  mlp_bias?: boolean;
  bos_token_id?: number | null;
  eos_token_id?: number | number[] | null;
  pad_token_id?: number | null;
  torch_dtype?: string;
  /** Other keys of config.json are kept so that saving writes them back. */
  [key: string]: unknown;
}

// ---------------------------------------------------------------------------------------------------------
// Tokens.

/** Label value that is ignored by the loss (PyTorch/HF convention). */
export const IGNORE_INDEX = -100;

/** One training sequence. `labels[i]` is the target for position i (already aligned, HF style: the model shifts). */
export interface TokenizedExample {
  inputIds: number[];
  /** Same length as inputIds; IGNORE_INDEX where no loss is taken (prompt tokens, padding). */
  labels: number[];
  /**
   * For packed blocks: the document index of each token. Tokens attend only to earlier tokens of the same
   * segment, and positions restart at 0 for each segment. Absent = one segment.
   */
  segmentIds?: number[];
}

/** A tokenized preference pair (DPO): prompt + chosen and prompt + rejected share the prompt tokens. */
export interface TokenizedPreference {
  promptIds: number[];
  chosenIds: number[];
  rejectedIds: number[];
}

/** The minimal tokenizer the stages need; `@hippocrates/tokenizer` implements it. */
export interface TextTokenizer {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  encode(text: string, options?: { addSpecialTokens?: boolean }): Promise<number[]>;
  decode(ids: number[], options?: { skipSpecialTokens?: boolean }): Promise<string>;
}

// ---------------------------------------------------------------------------------------------------------
// Dataset records (text level), as the builders of `@hippocrates/data` write them (JSONL, one per line).

/** A document for continued pre-training. */
export interface TextDocument {
  id: string;
  source: string;
  text: string;
}

export type ChatRole = "system" | "user" | "assistant";

export interface ChatMessage {
  role: ChatRole;
  content: string;
}

/** An instruction-tuning record. The loss is taken on assistant turns only. */
export interface InstructionRecord {
  id: string;
  source: string;
  messages: ChatMessage[];
}

/** A preference pair in TRL's format. */
export interface PreferenceRecord {
  id: string;
  source: string;
  prompt: string;
  chosen: string;
  rejected: string;
}

/** A multiple-choice question as the benchmarks store it. */
export interface MultipleChoiceItem {
  id: string;
  question: string;
  options: string[];
  /** Index into `options`. */
  gold: number;
  meta?: Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------------------
// Models as the evaluation and the server see them.

/** lm-evaluation-harness's `loglikelihood` request, already tokenized. */
export interface LogLikelihoodRequest {
  context: number[];
  continuation: number[];
}

export interface LogLikelihoodResult {
  /** Sum of log-probabilities of the continuation tokens given the context. */
  logprob: number;
  /** Whether greedy decoding from the context would produce exactly the continuation. */
  isGreedy: boolean;
}

export interface RunOptions {
  progress?: ProgressReporter;
  signal?: AbortSignal;
}

/** Anything that can score continuations: the local model, an OpenAI-compatible endpoint, a user's own. */
export interface ScoringModel {
  readonly name: string;
  /** Longest sequence the model takes; longer inputs are truncated from the left. */
  readonly maxLength: number;
  logLikelihood(requests: LogLikelihoodRequest[], options?: RunOptions): Promise<LogLikelihoodResult[]>;
}

export interface GenerationOptions {
  maxNewTokens: number;
  /** 0 = greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  stopTokenIds?: number[];
  stopStrings?: string[];
  /** Called for each new token of each sequence (streaming). */
  onToken?: (sequence: number, tokenId: number) => void;
}

export interface GenerationResult {
  tokens: number[];
  finishReason: "stop" | "length";
}

export interface GenerativeModel {
  readonly name: string;
  readonly maxLength: number;
  generate(prompts: number[][], options: GenerationOptions & RunOptions): Promise<GenerationResult[]>;
}

// ---------------------------------------------------------------------------------------------------------
// Stages and the artifacts they pass along.

/**
 * A model on disk: a full HF model (a local folder, or a Hugging Face Hub id such as
 * `meta-llama/Llama-2-7b-hf` at an optional revision), or a PEFT adapter on top of a base. For a Hub id the
 * pipeline writes the commit sha the revision resolved to as `revision`, so a stage, a later run and the
 * manifest all name the same weights.
 */
export type ModelArtifact =
  | { kind: "hf-model"; path: string; revision?: string }
  | { kind: "peft-adapter"; path: string; base: ModelArtifact; revision?: string };

export interface StageContext {
  /** Folder this stage owns; it may leave checkpoints there and resume from them. */
  outputDir: string;
  /** Folder of the whole run (manifest, other stages). */
  runDir: string;
  /** Folder that relative paths in the stage's settings are relative to (the pipeline file's folder). */
  baseDir: string;
  /** The run's tokenizer: a local folder or a Hub id (the pipeline's `tokenizer:`, default its `model:`). */
  tokenizer: string;
  seed: number;
  progress: ProgressReporter;
  signal: AbortSignal;
  log: (message: string) => void;
}

/** One step of a pipeline: typed input in, typed output out. Stages are values, not subclasses. */
export interface Stage<Input, Output> {
  /** e.g. "cpt", "sft", "dpo", "merge", "eval", or a user's own name. */
  readonly kind: string;
  run(input: Input, context: StageContext): Promise<Output>;
}

/** What the pipeline stages take and give: a model in, a model (and metrics) out. */
export interface PipelineStageInput<Settings = Record<string, unknown>> {
  model: ModelArtifact;
  /** The stage's settings, as its `settings` schema returned them. */
  config: Settings;
}

export interface PipelineStageOutput {
  model: ModelArtifact;
  /** Numbers for the report (final loss, accuracy per task, ...). */
  metrics: Record<string, number>;
  /** Named files the stage produced (metrics JSONL, results JSON, ...), relative to outputDir or absolute. */
  files: Record<string, string>;
  /** What the stage read from the Hugging Face Hub (an eval stage's datasets), recorded in the run manifest. */
  sources?: ResolvedSource[];
}

/** A model, tokenizer, adapter or dataset read from the Hugging Face Hub, at the commit it resolved to. */
export interface ResolvedSource {
  /**
   * What it was to the stage or run: "model", "tokenizer", "adapter", or "dataset <task>/<test|train|dev>" (the
   * task's documents or its few-shot pool; `split` names the repository's split).
   */
  role: string;
  type: "model" | "dataset";
  /** `org/name`. */
  repo: string;
  /** The revision asked for (a branch, tag or commit). */
  revision: string;
  /** The commit sha it resolved to. */
  commit: string;
  /** A dataset's config (`dataset_name`), "default" when it has none. */
  config?: string;
  /** A dataset's split in the repository (`test`, `validation`, `train`, ...). */
  split?: string;
}

/** What a stage's `check` may use: everything known before any stage runs. */
export type StageCheckContext = Pick<StageContext, "baseDir" | "tokenizer" | "log">;

/**
 * A pipeline stage: the built-in ones (`cptStage()` of @hippocrates/train, `evalStage()` of @hippocrates/eval,
 * ...) and a user's are the same kind of value and are registered the same way, so a user's stage can take a
 * built-in's place under its kind.
 */
export interface PipelineStage<Settings = Record<string, unknown>>
  extends Stage<PipelineStageInput<Settings>, PipelineStageOutput> {
  /**
   * Validates the stage's settings as the pipeline file writes them (every key of the stage's entry except
   * `kind`, `name`, `from`, `module` and `seed`) and gives them their type. Any Standard Schema
   * (https://standardschema.dev) works: zod 4, valibot, arktype; `anySettings` accepts any object as it is.
   * Issues are reported with their key paths before anything runs.
   */
  readonly settings: StandardSchemaV1<unknown, Settings>;
  /**
   * Checks that need no compute and catch mistakes before any stage starts (`hippo run --dry-run` and the
   * start of every run): data files exist and parse, tasks are known, paths are not files where folders are
   * wanted. Throw a HippoError that names the key.
   */
  check?(settings: Settings, context: StageCheckContext): Promise<void>;
}

/** Settings schema of a stage that takes any object as it is (no validation). */
export const anySettings: StandardSchemaV1<unknown, Record<string, unknown>> = {
  "~standard": {
    version: 1,
    vendor: "hippocrates",
    validate: (value) =>
      isPlainObject(value)
        ? { value: { ...value } }
        : { issues: [{ message: "expected an object of settings" }] },
  },
};
