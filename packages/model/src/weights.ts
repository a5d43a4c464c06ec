/**
 * The weight inventory of a Llama/Mistral checkpoint, with HF's names and shapes. Linear weights are [out, in]
 * on disk (PyTorch) and [in, out] in memory, so each linear layer is x W, a non-transposed 2-D product (the only
 * fast matmul on the wasm backend); loading transposes once, saving transposes back.
 */
import type { ModelConfig } from "@hippocrates/core";
import { dimsOf } from "./config.js";

export interface WeightSpec {
  /** HF name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  name: string;
  /** Shape in the HF checkpoint. */
  hfShape: number[];
  /** Shape in memory ([in, out] for linear layers). */
  shape: number[];
  /** Linear layer weight: transposed between disk and memory. */
  linear: boolean;
  kind: "embedding" | "norm" | "linear";
}

/** The linear modules of a decoder layer, as PEFT's target_modules name them. */
export const LINEAR_MODULES = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
] as const;
export type LinearModule = (typeof LINEAR_MODULES)[number];

export function modulePath(module: LinearModule): string {
  return module.endsWith("_proj") && ["gate_proj", "up_proj", "down_proj"].includes(module)
    ? `mlp.${module}`
    : `self_attn.${module}`;
}

/** [in, out] of a linear module. */
export function linearShape(config: ModelConfig, module: LinearModule): [number, number] {
  const d = dimsOf(config);
  const q = d.heads * d.headDim;
  const kv = d.kvHeads * d.headDim;
  switch (module) {
    case "q_proj":
      return [d.hidden, q];
    case "k_proj":
    case "v_proj":
      return [d.hidden, kv];
    case "o_proj":
      return [q, d.hidden];
    case "gate_proj":
    case "up_proj":
      return [d.hidden, d.intermediate];
    case "down_proj":
      return [d.intermediate, d.hidden];
  }
}

export function linearWeightName(layer: number, module: LinearModule): string {
  return `model.layers.${layer}.${modulePath(module)}.weight`;
}

export function weightSpecs(config: ModelConfig): WeightSpec[] {
  const d = dimsOf(config);
  const specs: WeightSpec[] = [
    {
      name: "model.embed_tokens.weight",
      hfShape: [d.vocab, d.hidden],
      shape: [d.vocab, d.hidden],
      linear: false,
      kind: "embedding",
    },
  ];
  const norm = (name: string): WeightSpec => ({
    name,
    hfShape: [d.hidden],
    shape: [d.hidden],
    linear: false,
    kind: "norm",
  });
  for (let l = 0; l < d.layers; l++) {
    specs.push(norm(`model.layers.${l}.input_layernorm.weight`));
    for (const m of LINEAR_MODULES) {
      if (m === "gate_proj") specs.push(norm(`model.layers.${l}.post_attention_layernorm.weight`));
      const [i, o] = linearShape(config, m);
      specs.push({
        name: linearWeightName(l, m),
        hfShape: [o, i],
        shape: [i, o],
        linear: true,
        kind: "linear",
      });
    }
  }
  specs.push(norm("model.norm.weight"));
  if (!d.tied) {
    specs.push({
      name: "lm_head.weight",
      hfShape: [d.vocab, d.hidden],
      shape: [d.hidden, d.vocab],
      linear: true,
      kind: "linear",
    });
  }
  return specs;
}

export function parameterCount(config: ModelConfig): number {
  let n = 0;
  for (const s of weightSpecs(config)) n += s.shape.reduce((a, b) => a * b, 1);
  return n;
}
