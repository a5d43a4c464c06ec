export { openRequestCache, type RequestCache, requestKey } from "./cache.js";
export {
  type EvalOutput,
  type EvaluateOptions,
  evaluate,
  mergeShards,
  type ResultsJson,
  readOutput,
  type SampleRecord,
  type Shard,
  type TaskMetrics,
  writeOutput,
} from "./evaluate.js";
export { argmax, meanStderr, pooledStderr, pyLen, scoreDoc } from "./metrics.js";
export { createOpenAICompletionsModel, type OpenAICompletionsOptions } from "./openai.js";
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
  type EvalSettings,
  evalSettingsSchema,
  evalStage,
  metricsFromResults,
} from "./stage.js";
export * from "./tasks/builtin.js";
export {
  loadLetterOptionsJsonl,
  loadMedmcqa,
  loadMmluCsv,
  loadPubmedqa,
  loadPubmedqaTest500,
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
export { compileTemplate, loadTaskFile, taskFromSpec } from "./tasks/taskfile.js";
export type {
  EvalDoc,
  FewshotSource,
  MetricName,
  TaskData,
  TaskDefinition,
  TaskGroup,
} from "./tasks/types.js";
export { PROMPT_VARIANTS, type PromptVariant, withVariant } from "./tasks/variants.js";
