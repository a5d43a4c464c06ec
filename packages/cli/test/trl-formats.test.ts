/**
 * TRL's dataset formats and HF's setting names end to end (issue 11): the example records of TRL's "Dataset
 * formats and types" page (trl v0.17 docs, huggingface.co/docs/trl/v0.17.0/dataset_formats: language
 * modelling, prompt-completion, preference with an explicit and an implicit prompt; standard and
 * conversational) train a tiny random Llama for two steps through `hippo train` with HfArgumentParser's flag
 * spellings, and through `hippo run` of a pipeline written with HF/TRL/PEFT key names.
 */
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { initArgs, removeTempDir, runHippo, runHippoOk, tinyLlamaFolder } from "./helpers/cli.js";

const user = (content: string) => ({ role: "user", content });
const assistant = (content: string) => ({ role: "assistant", content });

/** One example record per format, as TRL's docs write them. */
const FORMATS: { name: string; kind: "cpt" | "sft" | "dpo"; record: unknown }[] = [
  { name: "standard-language-modeling-cpt", kind: "cpt", record: { text: "The sky is blue." } },
  { name: "standard-language-modeling", kind: "sft", record: { text: "The sky is blue." } },
  {
    name: "conversational-language-modeling",
    kind: "sft",
    record: { messages: [user("What color is the sky?"), assistant("It is blue.")] },
  },
  { name: "standard-prompt-completion", kind: "sft", record: { prompt: "The sky is", completion: " blue." } },
  {
    name: "conversational-prompt-completion",
    kind: "sft",
    record: { prompt: [user("What color is the sky?")], completion: [assistant("It is blue.")] },
  },
  {
    name: "standard-preference",
    kind: "dpo",
    record: { prompt: "The sky is", chosen: " blue.", rejected: " green." },
  },
  {
    name: "conversational-preference",
    kind: "dpo",
    record: {
      prompt: [user("What color is the sky?")],
      chosen: [assistant("It is blue.")],
      rejected: [assistant("It is green.")],
    },
  },
  {
    name: "standard-implicit-prompt-preference",
    kind: "dpo",
    record: { chosen: "The sky is blue.", rejected: "The sky is green." },
  },
  {
    name: "conversational-implicit-prompt-preference",
    kind: "dpo",
    record: {
      chosen: [user("What color is the sky?"), assistant("It is blue.")],
      rejected: [user("What color is the sky?"), assistant("It is green.")],
    },
  },
];

let dir: string;

const hippo = (...args: string[]) => runHippo(dir, args);
const ok = async (...args: string[]) => (await runHippoOk(dir, args)).stdout;

/** metrics.jsonl's training losses by step: both steps ran and gave a finite loss. */
async function expectTwoFiniteLosses(stageDir: string, name: string): Promise<void> {
  const l = (await readFile(join(stageDir, "metrics.jsonl"), "utf8"))
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { step: number; loss?: number })
    .filter((e) => typeof e.loss === "number")
    .map((e): [number, number] => [e.step, e.loss as number]);
  expect(
    l.map(([s]) => s),
    name,
  ).toEqual([1, 2]);
  expect(
    l.every(([, v]) => Number.isFinite(v)),
    name,
  ).toBe(true);
}

beforeAll(async () => {
  dir = await tinyLlamaFolder("cli-trl", { max_position_embeddings: 128 });
  await ok(...initArgs("base", "--seed", "1"));
  for (const f of FORMATS) await writeFile(join(dir, `${f.name}.jsonl`), `${JSON.stringify(f.record)}\n`);
}, 120_000);
afterAll(() => removeTempDir(dir));

describe("TRL's dataset formats train end to end", () => {
  it("hippo train takes each format with HfArgumentParser's flag spellings", {
    timeout: 600_000,
  }, async () => {
    for (const f of FORMATS) {
      const out = JSON.parse(
        await ok(
          "train",
          f.kind,
          "--model_name_or_path",
          "base",
          "--data",
          `${f.name}.jsonl`,
          "--output_dir",
          `train-${f.name}`,
          "--max_steps",
          "2",
          "--num_train_epochs",
          "2",
          "--per_device_train_batch_size",
          "1",
          "--gradient_accumulation_steps",
          "1",
          "--learning_rate",
          "1e-3",
          "--lora_r",
          "2",
          "--lora_target_modules",
          "q_proj",
          "v_proj",
          "--max_length",
          "64",
          "--no-progress",
        ),
      );
      expect(out.metrics.global_step, f.name).toBe(2);
      await expectTwoFiniteLosses(join(dir, `train-${f.name}`), f.name);
      // Only the flags given changed the preset: r and the targets, the preset's alpha kept.
      const adapter = JSON.parse(await readFile(join(dir, `train-${f.name}`, "adapter_config.json"), "utf8"));
      expect(adapter, f.name).toMatchObject({ r: 2, target_modules: ["q_proj", "v_proj"] });
      expect(adapter.lora_alpha, f.name).toBe({ cpt: 16, sft: 32, dpo: 16 }[f.kind]);
    }
  });

  it("hippo run takes each format in a pipeline written with HF, TRL and PEFT names", {
    timeout: 600_000,
  }, async () => {
    const stage = (f: (typeof FORMATS)[number]) =>
      [
        `  - kind: ${f.kind}`,
        `    name: ${f.name}`,
        "    from: base",
        `    data: ./${f.name}.jsonl`,
        "    learning_rate: 1.0e-3",
        "    num_train_epochs: 2",
        "    max_steps: 2",
        "    per_device_train_batch_size: 1",
        "    gradient_accumulation_steps: 1",
        "    lr_scheduler_type: linear",
        "    warmup_ratio: 0.1",
        "    save_steps: 1",
        "    logging_steps: 1",
        "    max_length: 64",
        "    lora: { r: 2, lora_alpha: 4, lora_dropout: 0.0, target_modules: all-linear, use_rslora: true }",
        ...(f.kind === "dpo" ? ["    beta: 0.2", "    loss_type: sigmoid"] : []),
      ].join("\n");
    await writeFile(
      join(dir, "trl.yaml"),
      `name: trl\nmodel: ./base\noutput_dir: ./trl-run\nseed: 5\nstages:\n${FORMATS.map(stage).join("\n")}\n`,
    );
    const r = await hippo("run", "trl.yaml", "--no-progress");
    expect(r.status, r.stderr).toBe(0);
    const manifest = JSON.parse(await readFile(join(dir, "trl-run", "manifest.json"), "utf8"));
    expect(manifest.status).toBe("done");
    for (const f of FORMATS) {
      const rec = manifest.stages.find((s: { id: string }) => s.id === f.name);
      expect(rec?.status, f.name).toBe("done");
      expect(rec?.input, f.name).toEqual({ kind: "hf-model", path: join(dir, "base") });
      expect(rec?.output?.metrics?.global_step, f.name).toBe(2);
      await expectTwoFiniteLosses(rec.outputDir, f.name);
      const adapter = JSON.parse(await readFile(join(rec.outputDir, "adapter_config.json"), "utf8"));
      expect(adapter, f.name).toMatchObject({ r: 2, lora_alpha: 4, use_rslora: true });
      expect(existsSync(join(rec.outputDir, "adapter_model.safetensors")), f.name).toBe(true);
    }
  });
});
