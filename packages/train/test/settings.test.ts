/**
 * The stages' settings: HF/TRL/PEFT names, the earlier short names as aliases, did-you-mean errors, partial
 * overrides over the presets, and the pre-flight `check` (data files, template, LoRA targets, rules across
 * keys). Nothing here loads a model.
 */
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { StageCheckContext, StandardSchemaV1 } from "@hippocrates/core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CPT_PRESET, DPO_PRESET, SFT_PRESET } from "../src/presets.js";
import { settingKeys } from "../src/settings.js";
import { cptStage, dpoStage, sftStage } from "../src/stage.js";

/** Validate through the Standard Schema interface, as the pipeline does. */
async function validate<T>(schema: StandardSchemaV1<unknown, T>, value: unknown) {
  const r = await schema["~standard"].validate(value);
  return r.issues
    ? { issues: r.issues.map((i) => ({ path: (i.path ?? []).map(String).join("."), message: i.message })) }
    : { value: r.value };
}

async function valid<T>(schema: StandardSchemaV1<unknown, T>, value: unknown): Promise<T> {
  const r = await validate(schema, value);
  if ("issues" in r) throw new Error(JSON.stringify(r.issues));
  return r.value as T;
}

describe("training stage settings", () => {
  it("a partial lora block keeps the SFT preset's alpha 32 and all-linear targets (old --lora-r 32 gave MLP, alpha 64)", async () => {
    const s = await valid(sftStage().settings, { data: "sft.jsonl", lora: { r: 32 } });
    expect(s.lora).toEqual({
      r: 32,
      lora_alpha: 32,
      lora_dropout: 0,
      target_modules: "all-linear",
      use_rslora: false,
    });
    const cpt = await valid(cptStage().settings, { data: "c.jsonl", lora: { r: 4 } });
    expect(cpt.lora).toEqual({ ...CPT_PRESET.lora, r: 4 });
  });

  it("fills every other setting from the stage's preset, with HF's names", async () => {
    const s = await valid(dpoStage().settings, { data: "dpo.jsonl" });
    expect(s).toEqual({ ...DPO_PRESET, data: "dpo.jsonl", template: "default" });
    expect(await valid(sftStage().settings, { data: "x.jsonl" })).toEqual({
      ...SFT_PRESET,
      data: "x.jsonl",
      template: "default",
    });
  });

  it("accepts the earlier short names as aliases of the documented keys", async () => {
    const s = await valid(cptStage().settings, {
      data: "c.jsonl",
      lr: 1e-3,
      epochs: 2,
      batch_size: 4,
      grad_accum: 3,
      scheduler: "linear",
      save_every: 10,
      log_every: 5,
      eval_every: 7,
      eval_data: "e.jsonl",
      lora: { r: 8, alpha: 4, dropout: 0.1, target_modules: ["q_proj"] },
    });
    expect(s).toMatchObject({
      learning_rate: 1e-3,
      num_train_epochs: 2,
      per_device_train_batch_size: 4,
      gradient_accumulation_steps: 3,
      lr_scheduler_type: "linear",
      save_steps: 10,
      logging_steps: 5,
      eval_steps: 7,
      lora: { r: 8, lora_alpha: 4, lora_dropout: 0.1, target_modules: ["q_proj"], use_rslora: false },
    });
    expect(s).not.toHaveProperty("lr");
    expect(s).not.toHaveProperty("epochs");
  });

  it("refuses both spellings of one setting", async () => {
    expect(await validate(sftStage().settings, { data: "x", lr: 1e-3, learning_rate: 1e-3 })).toEqual({
      issues: [
        { path: "lr", message: expect.stringMatching(/"lr" and "learning_rate" name the same setting/) },
      ],
    });
    const r = await validate(sftStage().settings, { data: "x", lora: { alpha: 8, lora_alpha: 8 } });
    expect(r).toMatchObject({ issues: [{ path: "lora.alpha" }] });
  });

  it("an unknown key is an error that suggests the closest known key, at the top level and in lora", async () => {
    const top = await validate(sftStage().settings, { data: "x", learning_rat: 1e-3 });
    expect(top).toMatchObject({
      issues: [{ message: 'unknown key "learning_rat"; did you mean "learning_rate"?' }],
    });
    const lora = await validate(sftStage().settings, { data: "x", lora: { lora_alpa: 8 } });
    expect(lora).toMatchObject({
      issues: [{ path: "lora", message: 'unknown key "lora_alpa"; did you mean "lora_alpha"?' }],
    });
    const dpoOnly = await validate(sftStage().settings, { data: "x", beta: 0.1 });
    expect(dpoOnly).toMatchObject({ issues: [{ message: expect.stringMatching(/unknown key "beta"/) }] });
  });

  it("reports bad values and a missing data file with their key", async () => {
    const r = await validate(dpoStage().settings, { learning_rate: -1, loss_type: "kto" });
    const paths = ("issues" in r ? (r.issues ?? []) : []).map((i) => i.path);
    expect(paths).toContain("learning_rate");
    expect(paths).toContain("loss_type");
    const noData = await validate(cptStage().settings, {});
    expect(noData).toMatchObject({
      issues: [{ path: "data", message: expect.stringMatching(/needs its training data/) }],
    });
  });

  it("lora: false is full fine-tuning; a lora block after false starts from PEFT's defaults", async () => {
    expect((await valid(sftStage().settings, { data: "x", lora: false })).lora).toBe(false);
    const s = await valid(sftStage({ lora: false }).settings, { data: "x", lora: { r: 16 } });
    expect(s.lora).toEqual({
      r: 16,
      lora_alpha: 8,
      lora_dropout: 0,
      target_modules: ["q_proj", "v_proj"],
      use_rslora: false,
    });
  });

  it("factory defaults sit between the preset and the pipeline entry", async () => {
    const stage = sftStage({ learning_rate: 2e-4, lora: { r: 16 }, template: "chatml" });
    const s = await valid(stage.settings, { data: "x", num_train_epochs: 1 });
    expect(s).toMatchObject({
      learning_rate: 2e-4,
      num_train_epochs: 1,
      template: "chatml",
      lora: { r: 16, lora_alpha: 32, target_modules: "all-linear" },
    });
    expect((await valid(stage.settings, { data: "x", learning_rate: 1e-3 })).learning_rate).toBe(1e-3);
    expect(() => sftStage({ learnin_rate: 1 } as never)).toThrow(
      /sftStage defaults: unknown key "learnin_rate"; did you mean "learning_rate"\?/,
    );
  });

  it("lists the keys a pipeline entry may give (documented names and aliases)", () => {
    expect(settingKeys("dpo")).toEqual(
      expect.arrayContaining(["learning_rate", "lr", "beta", "loss_type", "template", "lora", "data"]),
    );
    expect(settingKeys("cpt")).not.toContain("template");
  });
});

describe("stage modules", () => {
  it("importing @hippocrates/train/stage or @hippocrates/model/merge-stage loads no TensorFlow.js", () => {
    // tfjs-core creates its engine (globalThis._tfengine) when its module is evaluated; the control import of
    // @hippocrates/model shows the probe sees it.
    const probe = 'console.log(globalThis._tfengine === undefined ? "light" : "tfjs")';
    const script = `await import("@hippocrates/train/stage"); await import("@hippocrates/model/merge-stage"); ${probe}; await import("@hippocrates/model"); ${probe};`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: new URL("..", import.meta.url),
      encoding: "utf8",
    });
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toEqual(["light", "tfjs"]);
  });
});

describe("training stage check", () => {
  let dir: string;
  const ctx = (): StageCheckContext => ({ baseDir: dir, tokenizer: "unused", log: () => {} });
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "hippo-stage-check-"));
    await writeFile(join(dir, "sft.jsonl"), `${JSON.stringify({ prompt: "a", completion: "b" })}\n`);
    await writeFile(
      join(dir, "bad.jsonl"),
      `${JSON.stringify({
        messages: [
          { role: "user", content: "q" },
          { role: "assistant", content: "a" },
        ],
      })}\n${JSON.stringify({ question: "q", answer: "a" })}\n`,
    );
    await writeFile(join(dir, "docs.jsonl"), `${JSON.stringify({ text: "a document" })}\n`);
    await mkdir(join(dir, "folder.jsonl"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  const check = async (stage: ReturnType<typeof sftStage>, entry: Record<string, unknown>) =>
    stage.check?.(await valid(stage.settings, entry), ctx());

  it("passes for readable data of an accepted format, relative to the pipeline's folder", async () => {
    await expect(check(sftStage(), { data: "sft.jsonl", eval_data: "sft.jsonl" })).resolves.toBeUndefined();
  });

  it("names the setting, the file and the line of a bad data file", async () => {
    await expect(check(sftStage(), { data: "missing.jsonl" })).rejects.toThrow(/key "data"/);
    await expect(check(sftStage(), { data: "missing.jsonl" })).rejects.toMatchObject({ code: "NOT_FOUND" });
    await expect(check(sftStage(), { data: "folder.jsonl" })).rejects.toThrow(/data: not a regular file/);
    await expect(check(sftStage(), { data: "sft.jsonl", eval_data: "bad.jsonl" })).rejects.toThrow(
      /bad\.jsonl:2.*eval_data: the record fits no sft data format.*got keys "question", "answer"/,
    );
    const cpt = cptStage();
    await expect(cpt.check?.(await valid(cpt.settings, { data: "sft.jsonl" }), ctx())).rejects.toThrow(
      /sft\.jsonl:1.*fits no cpt data format/,
    );
  });

  it("refuses an unknown template, an unknown LoRA module and settings that contradict each other", async () => {
    await expect(check(sftStage(), { data: "sft.jsonl", template: "alpaca" })).rejects.toThrow(/template/);
    await expect(
      check(sftStage(), { data: "sft.jsonl", lora: { target_modules: ["q_proj", "qkv"] } }),
    ).rejects.toThrow(/key "lora\.target_modules".*"qkv"/);
    await expect(
      check(sftStage(), { data: "sft.jsonl", lr_scheduler_type: "constant", warmup_steps: 10 }),
    ).rejects.toThrow(/constant_with_warmup/);
    await expect(check(sftStage(), { data: "sft.jsonl", eval_steps: 10 })).rejects.toThrow(
      /eval_steps needs evaluation data/,
    );
    const dpo = dpoStage();
    const s = await valid(dpo.settings, { data: "sft.jsonl", loss_type: "ipo", label_smoothing: 0.1 });
    await expect(dpo.check?.(s, ctx())).rejects.toThrow(/label_smoothing/);
  });
});
