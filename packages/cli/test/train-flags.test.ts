/**
 * `hippo train`'s flags become the stage's settings: our spellings and HfArgumentParser's name the same
 * setting, only the flags given are passed (so the preset keeps its other values), and two spellings of one
 * setting with different values are refused.
 */
import { Option } from "commander";
import { describe, expect, it } from "vitest";
import { settingsFromFlags, TRAIN_FLAGS } from "../src/commands/train.js";

/** Options as commander parses them: keyed by each spelling's attribute name. */
const opts = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).map(([flag, v]) => [new Option(flag).attributeName(), v]));

describe("hippo train flags", () => {
  it("maps ours and HF's spellings to the stage's HF-named settings, passing only what was given", () => {
    const { settings } = settingsFromFlags(
      "sft",
      opts({
        "--lr": 2e-4,
        "--num_train_epochs": 2,
        "--lora-r": 16,
        "--lora_target_modules": ["all-linear"],
      }),
    );
    expect(settings).toEqual({
      learning_rate: 2e-4,
      num_train_epochs: 2,
      lora: { r: 16, target_modules: "all-linear" },
    });
  });

  it("refuses two spellings of one setting with different values, and accepts the same value twice", () => {
    expect(() => settingsFromFlags("sft", opts({ "--lr": 1e-4, "--learning_rate": 2e-4 }))).toThrow(
      /--learning-rate|--lr.*--learning_rate set the same setting to different values/,
    );
    expect(settingsFromFlags("sft", opts({ "--lr": 1e-4, "--learning_rate": 1e-4 })).settings).toEqual({
      learning_rate: 1e-4,
    });
  });

  it("--full is full fine-tuning and takes no LoRA flags; DPO's flags exist only for dpo", () => {
    expect(settingsFromFlags("cpt", opts({ "--full": true })).settings).toEqual({ lora: false });
    expect(() => settingsFromFlags("cpt", opts({ "--full": true, "--lora-r": 4 }))).toThrow(/--full/);
    expect(settingsFromFlags("sft", opts({ "--beta": 0.3 })).settings).toEqual({});
    expect(settingsFromFlags("dpo", opts({ "--beta": 0.3, "--loss_type": "ipo" })).settings).toEqual({
      beta: 0.3,
      loss_type: "ipo",
    });
  });

  it("offers HfArgumentParser's spellings of TrainingArguments', TRL's and PEFT's fields", () => {
    const spellings = TRAIN_FLAGS.flatMap((f) => f.flags);
    for (const flag of [
      "--learning_rate",
      "--num_train_epochs",
      "--max_steps",
      "--per_device_train_batch_size",
      "--gradient_accumulation_steps",
      "--lr_scheduler_type",
      "--warmup_ratio",
      "--warmup_steps",
      "--save_steps",
      "--logging_steps",
      "--max_length",
      "--gradient_checkpointing",
      "--beta",
      "--loss_type",
      "--lora_r",
      "--lora_alpha",
      "--lora_dropout",
      "--lora_target_modules",
      "--use_rslora",
    ])
      expect(spellings, flag).toContain(flag);
  });
});
