export { activateTfBackend } from "./activate.js";
export { type BackendRequest, MAX_WASM_THREADS, resolveRequest } from "./options.js";
export {
  backendInfo,
  describeBackend,
  initBackend,
  memoryLimitBytes,
  WASM_MAX_HEAP_BYTES,
} from "./select.js";
export { BACKEND_NAMES, type BackendInfo, type BackendName, type BackendOptions } from "./types.js";
export { defaultWasmThreads } from "./wasm.js";
