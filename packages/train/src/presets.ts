/**
 * The paper's settings as plain objects with HF's names (spread them into a training call and override any
 * field, or give a stage factory the fields to change):
 *
 *   trainCausalLm({ ...SFT_PRESET, model, train, outputDir, learning_rate: 2e-4 })
 *   sftStage({ learning_rate: 2e-4, lora: { r: 16 } })   // the rest of SFT_PRESET (lora: alpha 32, all-linear) kept
 *
 * Published (Hippocrates, arXiv 2404.16621): CPT LoRA r8/alpha16 on the fully connected layers, AdamW, cosine,
 * lr 1e-4, batch 8 x accum 2, 1 epoch; SFT LoRA r32/alpha32 on all linear layers, lr 1e-4, 3 epochs, batch
 * 8 x accum 2; DPO (their code base's example) beta 0.1, sigmoid, lr 1e-5, 1 epoch, a new LoRA on q/v.
 * Not published, so the defaults of their code base (LLaMA-Factory) or HF apply: LoRA dropout 0, no warmup,
 * weight decay 0, AdamW betas (0.9, 0.999) and eps 1e-8, max_grad_norm 1.0, seed 42, DPO LoRA r8 alpha16
 * (LLaMA-Factory: alpha = 2 r), max length 1024.
 */
import type { DpoTrainingSettings, TrainingSettings } from "./settings.js";

/** HF TrainingArguments' default seed; a pipeline stage takes the run's seed instead. */
export const DEFAULT_SEED = 42;

const common = {
  lr_scheduler_type: "cosine",
  warmup_ratio: 0,
  weight_decay: 0,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  max_grad_norm: 1.0,
  max_length: 1024,
  save_steps: 500,
  logging_steps: 1,
  gradient_checkpointing: false,
  overwrite_output_dir: false,
  per_device_train_batch_size: 8,
  gradient_accumulation_steps: 2,
} as const satisfies Partial<TrainingSettings>;

export const CPT_PRESET = {
  ...common,
  lora: {
    r: 8,
    lora_alpha: 16,
    lora_dropout: 0,
    target_modules: ["gate_proj", "up_proj", "down_proj"],
    use_rslora: false,
  },
  learning_rate: 1e-4,
  num_train_epochs: 1,
} satisfies TrainingSettings;

export const SFT_PRESET = {
  ...common,
  lora: { r: 32, lora_alpha: 32, lora_dropout: 0, target_modules: "all-linear", use_rslora: false },
  learning_rate: 1e-4,
  num_train_epochs: 3,
} satisfies TrainingSettings;

export const DPO_PRESET = {
  ...common,
  lora: { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: ["q_proj", "v_proj"], use_rslora: false },
  learning_rate: 1e-5,
  num_train_epochs: 1,
  beta: 0.1,
  loss_type: "sigmoid",
  label_smoothing: 0,
} satisfies DpoTrainingSettings;
