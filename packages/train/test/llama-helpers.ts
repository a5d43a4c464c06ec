/** Shared setup for the tests on the real Llama of @hippocrates/model (wasm backend, shared data). */
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { initBackend } from "@hippocrates/backend";
import { addLoraAdapter, type CausalLM, type LinearModule, loadModel } from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";

/** Shared data lives beside the repository (never copied into it). */
export const SHARED = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
export const TINY = `${SHARED}models/tiny-llama-hf`;
export const LLAMA2_TOKENIZER = `${SHARED}tokenizers/llama2`;
export const PUBMEDQA = `${SHARED}benchmarks/pubmedqa/ori_pqal.json`;

export async function setupBackend(): Promise<void> {
  await initBackend({ backend: "wasm" });
  if (tf.getBackend() !== "wasm") throw new Error(`wasm backend expected, got ${tf.getBackend()}`);
}

/**
 * The shared tiny Llama (vocab 512) with a LoRA adapter (r 4, alpha 8, seed 3) on `targetModules`. B starts at
 * zero (PEFT init), which would make A's gradient zero and the adapter a no-op: B gets small nonzero values so
 * that both factors matter.
 */
export async function loadTinyWithLora(targetModules: LinearModule[]): Promise<CausalLM> {
  const model = await loadModel(TINY);
  const adapter = addLoraAdapter(model, { r: 4, alpha: 8, targetModules }, { seed: 3 });
  let k = 0;
  for (const b of adapter.b.values()) {
    const vals = Array.from({ length: b.size }, (_, i) => 0.05 * Math.sin(i * 0.7 + k++));
    tf.tidy(() => b.assign(tf.tensor(vals, b.shape)));
  }
  return model;
}

export interface PubmedQaItem {
  id: string;
  question: string;
  contexts: string[];
  decision: "yes" | "no" | "maybe";
}

export async function readPubmedQa(limit: number): Promise<PubmedQaItem[]> {
  const raw = JSON.parse(await readFile(PUBMEDQA, "utf8")) as Record<
    string,
    { QUESTION: string; CONTEXTS: string[]; final_decision: string }
  >;
  return Object.entries(raw)
    .slice(0, limit)
    .map(([id, r]) => ({
      id,
      question: r.QUESTION,
      contexts: r.CONTEXTS,
      decision: r.final_decision as PubmedQaItem["decision"],
    }));
}

/**
 * Real text through the real Llama-2 tokenizer, with the ids renumbered densely (0, 1 = BOS and 2 = EOS kept),
 * so that a tiny model's vocabulary covers exactly the tokens of the test corpus: the tests keep real token
 * sequences while the lm_head stays small enough for a 2-core machine (a 32,000-row head made each step ~20x
 * slower).
 */
export function createVocabMap(): { map: (ids: number[]) => number[]; size: () => number } {
  const ids = new Map<number, number>([
    [0, 0],
    [1, 1],
    [2, 2],
  ]);
  return {
    map: (seq) =>
      seq.map((t) => {
        let v = ids.get(t);
        if (v === undefined) {
          v = ids.size;
          ids.set(t, v);
        }
        return v;
      }),
    size: () => ids.size,
  };
}

/** A small random Llama config (vocabulary set by the caller). */
export const SMALL_LLAMA = {
  model_type: "llama",
  architectures: ["LlamaForCausalLM"],
  vocab_size: 512,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  hidden_act: "silu",
  max_position_embeddings: 512,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
  initializer_range: 0.02,
  pad_token_id: 0,
};
