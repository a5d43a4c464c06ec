export {
  adapterArtifact,
  basePathOf,
  copyTokenizerFiles,
  isLocalModelPath,
  loadArtifact,
  peftBasePath,
  TOKENIZER_FILES,
} from "./artifact.js";
export {
  cloneCache,
  createCache,
  disposeCache,
  expandCache,
  type KVCache,
  selectCacheRows,
} from "./cache.js";
export { repeatCacheRows } from "./cache-rows.js";
export { type Dims, dimsOf, parseModelConfig, readModelConfig, ropeInvFreq, ropeTables } from "./config.js";
export { TFJS_CORE_VERSION, wasmHeapBytes } from "./engine.js";
export {
  asGenerativeModel,
  type GenerateOptions,
  type GenerateResult,
  type GenerativeModelOptions,
  generate,
} from "./generate.js";
export {
  createRandomModel,
  estimateModelBytes,
  type LoadOptions,
  loadModel,
  type RandomModelOptions,
  type SaveDType,
  type SaveOptions,
  saveModel,
  transposeMatrix,
} from "./io.js";
export { buildCausalLM, type CausalLM, type ForwardOptions, type ForwardOutput } from "./llama.js";
export {
  ADAPTER_CONFIG,
  ADAPTER_WEIGHTS,
  type AddAdapterOptions,
  addLoraAdapter,
  deleteAdapter,
  type LoadAdapterOptions,
  type LoadPeftModelOptions,
  type LoraAdapter,
  type LoraConfig,
  loadAdapter,
  loadPeftModel,
  loraScaling,
  mergeAdapter,
  peftAdapterConfig,
  peftKey,
  saveAdapter,
  saveMergedModel,
  withAdaptersDisabled,
} from "./lora.js";
export {
  MERGE_DTYPES,
  type MergeDType,
  type MergeSettings,
  mergeSettingsSchema,
  mergeStage,
} from "./merge-stage.js";
export {
  applyRope,
  attention,
  embedding,
  linear,
  linearWithValue,
  logSoftmaxRows,
  loraAdd,
  pickRow,
  residualAdd,
  rmsNorm,
  rotateHalfMatrix,
  softmaxAndLogSumExp,
  swiglu,
  type TransposeOf,
  usesBatchedAttention,
} from "./ops.js";
export {
  createPrefixCache,
  type PrefixCache,
  type PrefixCacheOptions,
  type PrefixCacheStats,
} from "./prefix-cache.js";
export {
  argmax,
  checkSamplingOptions,
  type SamplingOptions,
  sampleFrom,
  selectToken,
  softmax,
  topKFilter,
  topPFilter,
  warpLogits,
} from "./sampling.js";
export {
  asScoringModel,
  type LocalScoringModel,
  type LogLikelihoodOptions,
  logLikelihood,
  type ScoreStats,
  type ScoringModelOptions,
  type TokenLogprobs,
  tokenLogprobs,
} from "./score.js";
export {
  LINEAR_MODULES,
  type LinearModule,
  linearShape,
  linearWeightName,
  parameterCount,
  type WeightSpec,
  weightSpecs,
} from "./weights.js";
