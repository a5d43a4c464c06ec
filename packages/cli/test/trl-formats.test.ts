/**
 * TRL's dataset formats and HF's setting names end to end (issue 11): the example records of TRL's "Dataset
 * formats and types" page (trl v0.17 docs, huggingface.co/docs/trl/v0.17.0/dataset_formats: language
 * modelling, prompt-completion, preference with an explicit and an implicit prompt; standard and
 * conversational) train a tiny random Llama for two steps through `hippo train` with HfArgumentParser's flag
 * spellings, and through `hippo run` of a pipeline written with HF/TRL/PEFT key names.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const HIPPO = fileURLToPath(new URL("../bin/hippo.mjs", import.meta.url));
const TOKENIZER = fileURLToPath(new URL("../../../../shared/data/tokenizers/llama2", import.meta.url));

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

function hippo(...args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HIPPO, ...args], { cwd: dir });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

async function ok(...args: string[]): Promise<string> {
  const r = await hippo(...args);
  expect({ status: r.status, stderr: r.status === 0 ? "" : r.stderr }).toEqual({ status: 0, stderr: "" });
  return r.stdout;
}

/** metrics.jsonl's training losses by step: both steps ran and gave a finite loss. */
async function losses(stageDir: string): Promise<[number, number][]> {
  return (await readFile(join(stageDir, "metrics.jsonl"), "utf8"))
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { step: number; loss?: number })
    .filter((e) => typeof e.loss === "number")
    .map((e) => [e.step, e.loss as number]);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hippo-cli-trl-"));
  await writeFile(
    join(dir, "tiny.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      hidden_act: "silu",
      max_position_embeddings: 128,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: false,
      vocab_size: 32000,
      bos_token_id: 1,
      eos_token_id: 2,
    }),
  );
  await ok("init", "--config", "tiny.json", "--output", "base", "--tokenizer", TOKENIZER, "--seed", "1");
  for (const f of FORMATS) await writeFile(join(dir, `${f.name}.jsonl`), `${JSON.stringify(f.record)}\n`);
}, 120_000);
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

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
      const l = await losses(join(dir, `train-${f.name}`));
      expect(
        l.map(([s]) => s),
        f.name,
      ).toEqual([1, 2]);
      expect(
        l.every(([, v]) => Number.isFinite(v)),
        f.name,
      ).toBe(true);
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
      const l = await losses(rec.outputDir);
      expect(
        l.map(([s]) => s),
        f.name,
      ).toEqual([1, 2]);
      expect(
        l.every(([, v]) => Number.isFinite(v)),
        f.name,
      ).toBe(true);
      const adapter = JSON.parse(await readFile(join(rec.outputDir, "adapter_config.json"), "utf8"));
      expect(adapter, f.name).toMatchObject({ r: 2, lora_alpha: 4, use_rslora: true });
      expect(existsSync(join(rec.outputDir, "adapter_model.safetensors")), f.name).toBe(true);
    }
  });
});
