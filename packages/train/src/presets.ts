/**
 * The paper's settings as plain objects (spread them into a stage's options and override any field):
 *
 *   trainSft({ ...SFT_PRESET, model, train, outputDir, lr: 2e-4 })
 *
 * Published (Hippocrates, arXiv 2404.16621): CPT LoRA r8/alpha16 on the fully connected layers, AdamW, cosine,
 * lr 1e-4, batch 8 x accum 2, 1 epoch; SFT LoRA r32/alpha32 on all linear layers, lr 1e-4, 3 epochs, batch
 * 8 x accum 2; DPO (their code base's example) beta 0.1, sigmoid, lr 1e-5, 1 epoch, a new LoRA on q/v.
 * Not published, so the defaults of their code base (LLaMA-Factory) or HF apply: LoRA dropout 0, no warmup,
 * weight decay 0, max_grad_norm 1.0, seed 42, DPO LoRA r8 alpha16 (LLaMA-Factory: alpha = 2 r), max length 1024.
 */
import type { DpoLossType } from "./losses.js";
import type { LoraSettings, StageTrainingConfig } from "./stages.js";

const MLP = ["gate_proj", "up_proj", "down_proj"];
const ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"];

const common = {
  schedule: "cosine",
  warmupRatio: 0,
  maxGradNorm: 1.0,
  optimizer: { weightDecay: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
  seed: 42,
  maxLength: 1024,
  saveSteps: 500,
  logSteps: 1,
} as const satisfies Partial<StageTrainingConfig>;

export const CPT_PRESET = {
  ...common,
  lora: { r: 8, alpha: 16, dropout: 0, targetModules: MLP, useRslora: false } satisfies LoraSettings,
  lr: 1e-4,
  microBatchSize: 8,
  gradientAccumulation: 2,
  epochs: 1,
} satisfies Partial<StageTrainingConfig>;

export const SFT_PRESET = {
  ...common,
  lora: { r: 32, alpha: 32, dropout: 0, targetModules: ALL_LINEAR, useRslora: false } satisfies LoraSettings,
  lr: 1e-4,
  microBatchSize: 8,
  gradientAccumulation: 2,
  epochs: 3,
} satisfies Partial<StageTrainingConfig>;

export const DPO_PRESET = {
  ...common,
  lora: {
    r: 8,
    alpha: 16,
    dropout: 0,
    targetModules: ["q_proj", "v_proj"],
    useRslora: false,
  } satisfies LoraSettings,
  lr: 1e-5,
  microBatchSize: 8,
  gradientAccumulation: 2,
  epochs: 1,
  beta: 0.1,
  lossType: "sigmoid" as DpoLossType,
  labelSmoothing: 0,
} satisfies Partial<StageTrainingConfig> & Record<string, unknown>;
