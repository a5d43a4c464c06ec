/**
 * @hippocrates/cli as a library: the pieces behind the `hippo` command, for scripts and tests.
 */
export { createProgram } from "./cli.js";
export { loadServeModel } from "./commands/serve.js";
export {
  type ConfigIssue,
  configError,
  formatPath,
  knownKeysAt,
  schemaIssues,
  validateWith,
} from "./config/issues.js";
export {
  type BaseModel,
  bindStage,
  type LoadOptions,
  loadPipelineConfig,
  type PipelineConfig,
  parseYaml,
  type ResolvedStage,
  resolvePipelineConfig,
} from "./config/load.js";
export * from "./config/schema.js";
export { main } from "./main.js";
export {
  allText,
  buildDatasets,
  generateKnowledgeBase,
  type KnowledgeBase,
  type MiniatureDatasets,
  mcPrompt,
} from "./miniature/kb.js";
export { MINIATURE_MODEL_CONFIG, MINIATURE_PIPELINE, prepareMiniature } from "./miniature/prepare.js";
export { writeTokenizerFolder } from "./miniature/tokenizer.js";
export { checkPipeline } from "./pipeline/checks.js";
export { type RunManifest, readManifest, type StageRecord } from "./pipeline/manifest.js";
export {
  BUILTIN_STAGE_KINDS,
  createBuiltinRegistry,
  createStageRegistry,
  isPipelineStage,
  loadModuleStage,
  loadStageModule,
  registerBuiltin,
  type StageRegistry,
} from "./pipeline/registry.js";
export {
  branches,
  describePlan,
  type RunPipelineOptions,
  type RunResult,
  runPipeline,
} from "./pipeline/runner.js";
export { collectReport, type ReportData } from "./report/collect.js";
export { renderHtmlReport } from "./report/html.js";
export { formatReportTable } from "./report/table.js";
export { localPromptScorer } from "./serve/local.js";
export { createServer, type HippoServer, type ServeOptions } from "./serve/server.js";
export { type PromptScorer, type ServeModel, scorerFromScoringModel } from "./serve/types.js";
