/**
 * docs/config-reference.md is written by hand; this keeps it complete: every key the pipeline's own schemas
 * accept (top level, a base model under `models:`, a stage entry) and every settings key of every built-in
 * stage (documented names and aliases, the LoRA block's too), read from the stages' own schemas in the
 * registry, must appear in the page as `key`; and the preset values the page states must be the train
 * package's. docs/reproduce-full-size.md's Hippo-λ + Hippo-μ pipeline must load and have the branches the page
 * shows.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BUILTIN_STAGE_KINDS,
  baseModelSchema,
  branches,
  createBuiltinRegistry,
  knownKeysAt,
  loadPipelineConfig,
  pipelineSchema,
  stageEntrySchema,
} from "@hippocrates/cli";
import { CPT_PRESET, DEFAULT_SEED, DPO_PRESET, SFT_PRESET } from "@hippocrates/train";
import { describe, expect, it } from "vitest";

const page = readFileSync(new URL("../../docs/config-reference.md", import.meta.url), "utf8");
const documented = (key: string) => page.includes(`\`${key}\``) || page.includes(`\`lora.${key}\``);

describe("docs/config-reference.md", () => {
  it("documents every top-level key, a base model's keys and every key of a stage entry", () => {
    for (const key of Object.keys(pipelineSchema.shape)) expect(documented(key), key).toBe(true);
    for (const key of Object.keys(baseModelSchema.shape))
      expect(documented(key), `models.*.${key}`).toBe(true);
    for (const key of Object.keys(stageEntrySchema.shape))
      expect(documented(key), `stages[].${key}`).toBe(true);
  });

  it("documents every settings key of every built-in stage and of the LoRA block", async () => {
    const registry = await createBuiltinRegistry();
    for (const kind of BUILTIN_STAGE_KINDS) {
      const settings = registry.get(kind)?.settings;
      const keys = knownKeysAt(settings, []);
      expect(keys.length, kind).toBeGreaterThan(0);
      for (const key of keys) expect(documented(key), `${kind}.${key}`).toBe(true);
      for (const key of knownKeysAt(settings, ["lora"]))
        expect(documented(key), `${kind}.lora.${key}`).toBe(true);
    }
    expect(knownKeysAt(registry.get("sft")?.settings, ["lora"])).toContain("lora_alpha");
  });

  it("states the presets' learning rates, batch shapes, epochs and LoRA ranks as the train package has them", () => {
    expect(page).toMatch(/\| `learning_rate` +\| `lr` +\| number > 0 +\| 1e-4 \/ 1e-4 \/ 1e-5 +\|/);
    expect([CPT_PRESET.learning_rate, SFT_PRESET.learning_rate, DPO_PRESET.learning_rate]).toEqual([
      1e-4, 1e-4, 1e-5,
    ]);
    expect(page).toMatch(/\| `num_train_epochs` +\| `epochs` +\| integer > 0 +\| 1 \/ 3 \/ 1 +\|/);
    expect([CPT_PRESET.num_train_epochs, SFT_PRESET.num_train_epochs, DPO_PRESET.num_train_epochs]).toEqual([
      1, 3, 1,
    ]);
    expect([CPT_PRESET.per_device_train_batch_size, CPT_PRESET.gradient_accumulation_steps]).toEqual([8, 2]);
    expect(page).toMatch(/\| `lora\.r` +\| +\| integer > 0 +\| 8 \/ 32 \/ 8 +\|/);
    expect([CPT_PRESET.lora.r, SFT_PRESET.lora.r, DPO_PRESET.lora.r]).toEqual([8, 32, 8]);
    expect(page).toMatch(/\| `lora\.lora_alpha` +\| `alpha` +\| number > 0 +\| 16 \/ 32 \/ 16 +\|/);
    expect([CPT_PRESET.lora.lora_alpha, SFT_PRESET.lora.lora_alpha, DPO_PRESET.lora.lora_alpha]).toEqual([
      16, 32, 16,
    ]);
    expect(SFT_PRESET.lora.target_modules).toBe("all-linear");
    expect(DPO_PRESET.lora.target_modules).toEqual(["q_proj", "v_proj"]);
    expect([DPO_PRESET.beta, DPO_PRESET.loss_type]).toEqual([0.1, "sigmoid"]);
    expect([CPT_PRESET.max_length, CPT_PRESET.save_steps, DEFAULT_SEED]).toEqual([1024, 500, 42]);
  });

  it("names gradient_checkpointing as the key for gradient checkpointing", () => {
    expect(page).toMatch(/\| `gradient_checkpointing` +\| +\| boolean +\| `false` /);
    expect(page).not.toMatch(/no key for .?gradient/i);
  });
});

describe("docs/reproduce-full-size.md", () => {
  const doc = readFileSync(new URL("../../docs/reproduce-full-size.md", import.meta.url), "utf8");

  it("gives Hippo-λ and Hippo-μ as one valid pipeline with the branches it shows", async () => {
    const yaml = /```yaml\n(# hippo-lambda-mu\.yaml\n[\s\S]*?)```/.exec(doc)?.[1];
    expect(yaml).toBeDefined();
    const dir = await mkdtemp(join(tmpdir(), "hippo-reproduce-doc-"));
    try {
      const file = join(dir, "hippo-lambda-mu.yaml");
      await writeFile(file, yaml ?? "");
      // Every key validated by the pipeline's and the stages' schemas; the 7B folders are not here, so no checks.
      const config = await loadPipelineConfig(file, { check: false });
      expect(config.models.map((m) => m.name)).toEqual(["base", "mistral"]);
      const shown = /branches:\n((?: {2}.*\n)+)/
        .exec(doc)?.[1]
        ?.trim()
        .split("\n")
        .map((l) => l.trim());
      expect(branches(config).map((b) => b.join(" -> "))).toEqual(shown);
      for (const s of config.stages.filter((st) => ["cpt", "sft", "dpo"].includes(st.kind)))
        expect((s.settings as { gradient_checkpointing: boolean }).gradient_checkpointing, s.id).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
