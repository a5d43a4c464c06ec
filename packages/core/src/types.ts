/**
 * The types the stages speak to each other. Implementations live in the other packages; anything that
 * satisfies these shapes (a user's own tokenizer, model, scorer or stage) can take their place.
 */
import type { ProgressReporter } from "./progress.js";

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

/** A model on disk: a full HF folder, or a PEFT adapter on top of a base folder. */
export type ModelArtifact =
  | { kind: "hf-model"; path: string }
  | { kind: "peft-adapter"; path: string; base: ModelArtifact };

export interface StageContext {
  /** Folder this stage owns; it may leave checkpoints there and resume from them. */
  outputDir: string;
  /** Folder of the whole run (manifest, other stages). */
  runDir: string;
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

/** What the built-in pipeline stages take and give: a model in, a model (and metrics) out. */
export interface PipelineStageInput<Config = Record<string, unknown>> {
  model: ModelArtifact;
  config: Config;
}

export interface PipelineStageOutput {
  model: ModelArtifact;
  /** Numbers for the report (final loss, accuracy per task, ...). */
  metrics: Record<string, number>;
  /** Named files the stage produced (metrics JSONL, results JSON, ...), relative to outputDir or absolute. */
  files: Record<string, string>;
}

export type PipelineStage<Config = Record<string, unknown>> = Stage<
  PipelineStageInput<Config>,
  PipelineStageOutput
>;
