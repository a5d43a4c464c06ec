export { isLogLikelihood, openRequestCache, type RequestCache, requestKey } from "./cache.js";
export {
  type EvaluateOptions,
  evaluate,
  type HubRevision,
  type ModelInfo,
  type Shard,
} from "./evaluate.js";
export { argmax, meanStderr, pooledStderr, pyLen, scoreDoc } from "./metrics.js";
export { createOpenAICompletionsModel, type OpenAICompletionsOptions } from "./openai.js";
export {
  aggregateResults,
  type EvalOutput,
  findResultsFile,
  fromHarnessSample,
  hashString,
  type MetricValue,
  mergeShards,
  metricValue,
  type OutputFiles,
  outputFiles,
  type ResultsJson,
  readOutput,
  resultsText,
  type SampleRecord,
  taskHash,
  toHarnessSample,
  writeOutput,
} from "./output.js";
export { applyLimit, type BuiltDoc, buildContexts, type ContextOptions } from "./protocol.js";
export {
  PUBLISHED_COLUMNS,
  PUBLISHED_RESULTS,
  PUBLISHED_SOURCE,
  PUBLISHED_STAGES,
  PUBLISHED_TASKS,
  type PublishedRow,
  type PublishedStage,
} from "./published.js";
export { pyFloatRepr, pyIsoDateId, pyJsonDumps, pyStr, sanitizeModelName } from "./pyformat.js";
export { PyRandom, type PyRandomState } from "./pyrandom.js";
export { orderedJsonEntries, parseCsv } from "./readers.js";
export { formatReport, type ReportRow } from "./report.js";
export {
  type BosPolicy,
  type EvalTokenizer,
  encodeDocRequests,
  type TokenizedRequest,
  truncateRequest,
} from "./requests.js";
export {
  datasetSources,
  type EvalSettings,
  evalSettingsSchema,
  evalStage,
  metricsFromResults,
} from "./stage.js";
export { BUILTIN_TASKS_DIR, MMLU_MEDICAL_SUBJECTS, readBuiltinTaskFiles } from "./tasks/builtin.js";
export { type DatasetRow, fetchSplitRows, parseTaskDataset, type TaskDataset } from "./tasks/hub.js";
export {
  endingsDocs,
  letterOptionsDocs,
  loadLetterOptionsJsonl,
  loadMedmcqa,
  loadMmluCsv,
  loadPubmedqa,
  loadPubmedqaFold0,
  loadPubmedqaTest500,
  medmcqaDocs,
  mmluDocs,
  pubmedqaDocs,
  type SourceRecord,
  splitPqal,
  TASK_LOADERS,
  type TaskLoader,
} from "./tasks/loaders.js";
export {
  createTaskRegistry,
  defaultRegistry,
  defineTask,
  PROFILES,
  type Profile,
  type TaskRegistry,
  validateTaskDefinition,
} from "./tasks/registry.js";
export {
  compileTemplate,
  loadTaskFile,
  parseTaskFile,
  pyStrip,
  type TaskFileEntry,
  taskFromSpec,
} from "./tasks/taskfile.js";
export type {
  DatasetSource,
  EvalDoc,
  FewshotSource,
  GroupMetric,
  MetricName,
  TaskData,
  TaskDefinition,
  TaskGroup,
  TaskLoadOptions,
} from "./tasks/types.js";
export { PROMPT_VARIANTS, type PromptVariant, v03Query, withVariant } from "./tasks/variants.js";
