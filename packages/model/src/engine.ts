/**
 * Every place where this package relies on TensorFlow.js beyond its public API, gathered here: engine state
 * that tfjs keeps private, tensor identity, and facts about the WebAssembly backend's kernels that the model's
 * exactness claims rest on. None of it is promised by tfjs; it is written against the versions below, and
 * test/engine.test.ts fails when the installed tfjs-core differs, so an upgrade re-checks each item:
 *
 * 1. `engine.state.gradientDepth` and `kernelDepth` (tfjs's own private `isTapeOn`): an op knows whether it is
 *    being recorded for a backward pass, so the fused ops of ops.ts only build their lean custom gradients
 *    when a gradient will be taken (`isRecording`).
 * 2. `engine.state.activeTape`: a `tf.grads` nested inside a custom gradient (gradient checkpointing re-runs a
 *    layer in the backward pass) replaces the outer tape, which tfjs still needs for its cleanup afterwards
 *    (`withOuterTape`).
 * 3. `Tensor.dataId`: the identity of a tensor's storage. `Variable.assign` gives a variable a new one, which is
 *    how a cached transpose W^T knows that its W changed (`storageOf`).
 * 4. The wasm backend's heap (`backend.wasm.HEAPU8`), for benchmarks' memory reports (`wasmHeapBytes`).
 * 5. Prefix-invariance of the XNNPACK kernels of @tensorflow/tfjs-backend-wasm (`PREFIX_ALIGNMENT`): a query's
 *    attention output does not change when masked keys are appended after a row whose length is a multiple of
 *    4, because the softmax accumulates 4-wide vectors in order (and a GEMM output is an in-order sum over k,
 *    whatever the other dimensions). So hidden states at positions below an aligned split are the same bits
 *    whether the sequence was run in one forward or split there (measured: 0 of 99,072 values differed);
 *    prefix reuse in score.ts rests on this.
 */
import * as tf from "@tensorflow/tfjs-core";

/** The tfjs-core release this module was written and tested against (items 1-4). */
export const TFJS_CORE_VERSION = "4.22.0";

/** The @tensorflow/tfjs-backend-wasm release whose kernels item 5 describes. */
export const TFJS_WASM_VERSION = "4.22.0";

/** What to re-check when the installed tfjs differs (printed by the version test). */
export const ENGINE_ASSUMPTIONS = [
  "engine.state.gradientDepth / kernelDepth still mean 'an op now is taped' (isRecording)",
  "engine.state.activeTape is still replaced by a nested tf.grads (withOuterTape)",
  "Variable.assign still gives the variable a new dataId (storageOf)",
  "backend('wasm').wasm.HEAPU8 is still the WebAssembly heap (wasmHeapBytes)",
  "softmax / matMul results are still unchanged by masked keys appended after a 4-aligned row (PREFIX_ALIGNMENT)",
] as const;

interface EngineState {
  gradientDepth: number;
  kernelDepth: number;
  activeTape: unknown;
}

function engineState(): EngineState {
  return (tf.engine() as unknown as { state: EngineState }).state;
}

/** Whether ops run now are recorded on a gradient tape (tfjs's isTapeOn: inside tf.grads, not inside an op). */
export function isRecording(): boolean {
  const state = engineState();
  return state.gradientDepth > 0 && state.kernelDepth === 0;
}

/**
 * Run `f` (which calls tf.grads inside a custom gradient) and put the outer gradient tape back afterwards:
 * the nested gradient computation resets the engine's tape, which the outer backward pass still needs.
 */
export function withOuterTape<T>(f: () => T): T {
  const state = engineState();
  const outer = state.activeTape;
  try {
    return f();
  } finally {
    state.activeTape = outer;
  }
}

/** An identity for the storage behind a tensor; a variable gets a new one on every `assign`. */
export function storageOf(t: tf.Tensor): object {
  return t.dataId;
}

/** Size of the WebAssembly heap in bytes (it only grows, so this is its peak), or null on another backend. */
export function wasmHeapBytes(): number | null {
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return backend.wasm?.HEAPU8?.length ?? null;
}

/**
 * Split points that keep results bit-identical (item 5): a sequence run up to a multiple of this many tokens
 * and continued on its KV cache gives the same bits as one forward. 4 is the measured minimum; 16 leaves
 * room for a wider accumulation in another build and costs little reuse.
 */
export const PREFIX_ALIGNMENT = 16;
