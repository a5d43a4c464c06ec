/**
 * The real model shape the benchmarks run with random weights: SmolLM-135M's config.json
 * (HuggingFaceTB/SmolLM-135M: Llama, 30 layers, hidden 576, 9 heads over 3 KV heads, vocab 49,152, tied
 * embeddings). Shared by this folder's benches, packages/train/bench/train.ts and
 * packages/eval/bench/{questions,mmlu}.ts.
 */
export const SMOLLM_135M = {
  model_type: "llama",
  architectures: ["LlamaForCausalLM"],
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  hidden_act: "silu",
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: true,
  bos_token_id: 1,
  eos_token_id: 2,
};
