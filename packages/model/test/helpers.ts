import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend } from "@hippocrates/backend";
import { openSafetensors } from "@hippocrates/safetensors";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll } from "vitest";

/** Shared data lives beside the repository (never copied into it). */
export const SHARED = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
export const TINY = `${SHARED}models/tiny-llama-hf`;

export async function setup(): Promise<void> {
  const info = await initBackend({ backend: "wasm" });
  if (tf.getBackend() !== "wasm")
    throw new Error(`wasm backend expected, got ${tf.getBackend()} (${info.reason})`);
}

/**
 * Before this file's tests: the wasm backend and a fresh temporary folder, removed after them. Returns the
 * folder's path (call it inside tests and hooks: it is set by the file's first beforeAll).
 */
export function setupWithTempDir(prefix: string): () => string {
  let dir: string | undefined;
  beforeAll(async () => {
    await setup();
    dir = await mkdtemp(join(tmpdir(), prefix));
  });
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
  return () => {
    if (dir === undefined) throw new Error("the temporary folder is made in beforeAll");
    return dir;
  };
}

export async function readReference(
  file: string,
): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const r = await openSafetensors(file);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  try {
    for (const [name, info] of r.tensors)
      out.set(name, { shape: info.shape, data: await r.readFloat32(name) });
  } finally {
    await r.close();
  }
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] as number));
  return m;
}

export function argmax(a: ArrayLike<number>, from = 0, to = a.length): number {
  let best = from;
  for (let i = from + 1; i < to; i++) if ((a[i] as number) > (a[best] as number)) best = i;
  return best - from;
}

/**
 * A small random Llama's config.json: vocab 64, hidden 32, intermediate 48, 2 layers, 4 query heads over 2 KV
 * heads (GQA), everything else transformers' default; `overrides` replace or add keys.
 */
export function smallLlamaConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: "llama",
    vocab_size: 64,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    ...overrides,
  };
}

/** A small random Mistral (tied embeddings, GQA) for sliding-window tests; pass the window. */
export function smallMistralConfig(slidingWindow: number) {
  return smallLlamaConfig({
    model_type: "mistral",
    max_position_embeddings: 64,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    sliding_window: slidingWindow,
    tie_word_embeddings: true,
    eos_token_id: 2,
  });
}
