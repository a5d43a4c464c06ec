export * from "./atomic.js";
export * from "./errors.js";
export * from "./json.js";
export * from "./jsonl.js";
export * from "./progress.js";
export * from "./rng.js";
export * from "./text.js";
export * from "./types.js";
