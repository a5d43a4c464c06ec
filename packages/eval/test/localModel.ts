/** Model shapes for the local-model integration test and the benchmark (SmolLM-135M's: model/bench/shapes.ts). */
/** A tiny random Llama with the Llama-2 tokenizer's vocabulary (hidden 64, 2 layers). */
export const TINY_LLAMA2_VOCAB = {
  model_type: "llama",
  vocab_size: 32000,
  hidden_size: 64,
  intermediate_size: 172,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  hidden_act: "silu",
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
} as const;
