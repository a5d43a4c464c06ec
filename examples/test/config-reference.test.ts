/**
 * docs/config-reference.md is written by hand; this keeps it complete: every key of the pipeline schema of
 * @hippocrates/cli (top level, each built-in stage, the LoRA block) must appear in the page as `key`, and
 * every preset field the page claims must exist in the train presets with that value.
 */
import { readFileSync } from "node:fs";
import { BUILTIN_STAGE_SCHEMAS, loraSchema, pipelineSchema } from "@hippocrates/cli";
import { CPT_PRESET, DEFAULT_SEED, DPO_PRESET, SFT_PRESET } from "@hippocrates/train";
import { describe, expect, it } from "vitest";

const page = readFileSync(new URL("../../docs/config-reference.md", import.meta.url), "utf8");
const documented = (key: string) => page.includes(`\`${key}\``) || page.includes(`\`lora.${key}\``);

describe("docs/config-reference.md", () => {
  it("documents every top-level key", () => {
    for (const key of Object.keys(pipelineSchema.shape)) expect(documented(key), key).toBe(true);
  });

  it("documents every key of every built-in stage and of the LoRA block", () => {
    for (const [kind, schema] of Object.entries(BUILTIN_STAGE_SCHEMAS)) {
      for (const key of Object.keys(schema.shape)) expect(documented(key), `${kind}.${key}`).toBe(true);
    }
    for (const key of Object.keys(loraSchema.shape)) expect(documented(key), `lora.${key}`).toBe(true);
  });

  it("states the presets' learning rates, batch shapes, epochs and LoRA ranks as the train package has them", () => {
    expect(page).toMatch(/\| `lr` +\| number > 0 +\| `lr` +\| 1e-4 \/ 1e-4 \/ 1e-5 +\|/);
    expect([CPT_PRESET.learning_rate, SFT_PRESET.learning_rate, DPO_PRESET.learning_rate]).toEqual([
      1e-4, 1e-4, 1e-5,
    ]);
    expect([CPT_PRESET.num_train_epochs, SFT_PRESET.num_train_epochs, DPO_PRESET.num_train_epochs]).toEqual([
      1, 3, 1,
    ]);
    expect([CPT_PRESET.per_device_train_batch_size, CPT_PRESET.gradient_accumulation_steps]).toEqual([8, 2]);
    expect([CPT_PRESET.lora.r, SFT_PRESET.lora.r, DPO_PRESET.lora.r]).toEqual([8, 32, 8]);
    expect([CPT_PRESET.lora.lora_alpha, SFT_PRESET.lora.lora_alpha, DPO_PRESET.lora.lora_alpha]).toEqual([
      16, 32, 16,
    ]);
    expect(DPO_PRESET.lora.target_modules).toEqual(["q_proj", "v_proj"]);
    expect([DPO_PRESET.beta, DPO_PRESET.loss_type]).toEqual([0.1, "sigmoid"]);
    expect([CPT_PRESET.max_length, CPT_PRESET.save_steps, DEFAULT_SEED]).toEqual([1024, 500, 42]);
  });
});
