/**
 * @hippocrates/data: dataset builders for continued pre-training, instruction tuning and preference learning.
 * Builders (one options object + a ProgressReporter -> a summary) first, then the pieces they are made of.
 */

export {
  type CptConfig,
  cptConfigSchema,
  cptOptionsFromConfig,
  cptSourceSchema,
  judgeConfigSchema,
  mixtureSourceSchema,
  type PreferenceConfig,
  parseDataConfig,
  preferenceConfigSchema,
  preferenceOptionsFromConfig,
  type SftConfig,
  sftConfigSchema,
  sftOptionsFromConfig,
} from "./config.js";
// Builders and their configuration files.
// CPT.
export {
  type BuildCptOptions,
  type BuildCptSummary,
  buildCptDataset,
  type CptSource,
  type CptSourceKind,
  createPacker,
  encodeMany,
  type MaybeBatchTokenizer,
  type Packer,
  type PackOptions,
  type RemainderPolicy,
  readCptDocuments,
} from "./cpt.js";
// Decontamination.
export {
  createNgramIndex,
  type DecontaminationReport,
  decontaminateInstructions,
  emptyDecontaminationReport,
  instructionText,
  multipleChoiceText,
  type NgramIndex,
  readTestTexts,
} from "./decontam.js";
// SFT.
export {
  type EvalInstructionStyle,
  type InstructionFormat,
  type InstructionSource,
  MEDITRON_MCQ_SYSTEM,
  MEDITRON_PUBMEDQA_SYSTEM,
  multipleChoiceMessages,
  pubmedqaMessages,
  readInstructions,
} from "./instructions.js";
// Preference data and the judge.
export {
  type AnswerCache,
  type ChatAnswer,
  type ChatRequest,
  createJudgeClient,
  formatJudgeStats,
  type JudgeClient,
  type JudgeClientOptions,
  type JudgeStats,
  openAnswerCache,
  parseRetryAfter,
  requestKey,
} from "./judge.js";
export { type DocumentedSource, medqaOnlyMixture, paperMixture } from "./mixes.js";
// Output.
export {
  type Builder,
  checkDatasetOutDir,
  type DatasetTarget,
  type Manifest,
  type OutputPolicy,
  type SourceManifest,
  writeDatasetDir,
} from "./output.js";
export {
  type BuildPreferenceOptions,
  type BuildPreferenceSummary,
  buildPreferenceDataset,
  judgeRequest,
  type PairPolicy,
  type PatientQuestion,
  PHYSICIAN_RUBRIC,
  pairsFromRanking,
  parseRanking,
  presentationOrder,
  RANKING_INSTRUCTION,
  readPatientQuestions,
} from "./preference.js";
// Reading and validating records.
export {
  detectFormat,
  type ParseFailure,
  type RawRecord,
  type ReadOptions,
  type RecordFormat,
  type RecordLocation,
  readRawRecords,
} from "./read.js";
export {
  type BuildSftOptions,
  type BuildSftSummary,
  buildSftDataset,
  type MixtureSource,
  resolveCounts,
  sampleCount,
} from "./sft.js";
export {
  CHATML_TEMPLATE,
  type ChatTemplateTokenizer,
  DEFAULT_TEMPLATE,
  encodeSegments,
  type PromptTemplate,
  renderSegments,
  type Segment,
  type SftTokenizeOptions,
  type StringTemplate,
  templateByName,
  tokenizeInstruction,
} from "./sft-tokenize.js";
export { ngrams, ngramWords, normalizeForDedup, sha256File, sha256Hex } from "./text.js";
// Training files -> tokenized examples (TRL's dataset formats and Alpaca).
export {
  checkTrainingFile,
  cptBlocks,
  dpoPairs,
  extractPrompt,
  type PreferencePair,
  parseTrainingRecord,
  readTrainingRecords,
  type SftRecord,
  type SftTokenizationOptions,
  sftExamples,
  type TextRecord,
  type TrainingDataKind,
  type TrainingRecordOf,
  type TrainingTemplate,
  type TrainingTokenizer,
  templateFromSetting,
  tokenizePreference,
  tokenizeSftRecord,
} from "./training-records.js";
export {
  type BadRecordPolicy,
  type BadRecordReport,
  type BadRecords,
  createBadRecords,
  readValidRecords,
  type ValidRecord,
  validateRecord,
} from "./validate.js";
