/**
 * `hippo train` over damaged checkpoints, as a user meets it: a corrupt newest checkpoint is skipped with a
 * notice naming it and the one resumed from; with every checkpoint corrupt the command stops and says so
 * (naming the folder and --restart) instead of silently training from step 0; `--restart` starts over.
 */
import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const HIPPO = fileURLToPath(new URL("../bin/hippo.mjs", import.meta.url));
const DATA = fileURLToPath(new URL("../../../../shared/data/", import.meta.url));
const TOKENIZER = join(DATA, "tokenizers", "llama2");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "hippo-cli-restart-"));
  await writeFile(
    join(dir, "tiny.json"),
    JSON.stringify({
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      hidden_act: "silu",
      max_position_embeddings: 256,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      vocab_size: 32000,
      bos_token_id: 1,
      eos_token_id: 2,
    }),
  );
  const records = [
    { instruction: "Which drug treats fever?", input: "", output: "Paracetamol." },
    { instruction: "Which organ makes insulin?", input: "", output: "The pancreas." },
  ];
  await writeFile(join(dir, "sft.jsonl"), records.map((r) => `${JSON.stringify(r)}\n`).join(""));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

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

function expectOk(r: { status: number | null; stderr: string }): void {
  expect({ status: r.status, stderr: r.status === 0 ? "" : r.stderr }).toEqual({ status: 0, stderr: "" });
}

const TRAIN = [
  "train",
  "sft",
  "--model",
  "base",
  "--data",
  "sft.jsonl",
  "--output",
  "out",
  "--max-steps",
  "2",
  "--batch-size",
  "1",
  "--save-every",
  "1",
  "--lora-r",
  "2",
  "--no-progress",
];

async function truncate(file: string): Promise<void> {
  const bytes = await readFile(file);
  await writeFile(file, bytes.subarray(0, bytes.length - 16));
}

describe("hippo train over damaged checkpoints", () => {
  it("announces a skipped checkpoint, stops when all are corrupt, and --restart starts over", async () => {
    expectOk(await hippo("init", "--config", "tiny.json", "--output", "base", "--tokenizer", TOKENIZER));
    expectOk(await hippo(...TRAIN));
    const out = join(dir, "out");
    expect((await readdir(out)).filter((n) => n.startsWith("checkpoint-")).sort()).toEqual([
      "checkpoint-1",
      "checkpoint-2",
    ]);

    // The newest is cut short: the rerun resumes from checkpoint-1 and says so, naming both.
    await truncate(join(out, "checkpoint-2", "trainable.safetensors"));
    const fallback = await hippo(...TRAIN);
    expectOk(fallback);
    const notice = fallback.stderr.split("\n").filter((l) => l.includes("unusable"));
    expect(notice).toHaveLength(1);
    expect(notice[0]).toContain(join(out, "checkpoint-2"));
    expect(notice[0]).toContain(`resuming from ${join(out, "checkpoint-1")}`);
    expect(JSON.parse(fallback.stdout).metrics.global_step).toBe(2);

    // Every checkpoint corrupt: an error naming the folder and the way out, not a silent restart.
    for (const c of ["checkpoint-1", "checkpoint-2"]) await truncate(join(out, c, "optimizer.safetensors"));
    const stopped = await hippo(...TRAIN);
    expect(stopped.status).not.toBe(0);
    expect(stopped.stderr).toContain(`every checkpoint in ${out} is corrupt`);
    expect(stopped.stderr).toContain("--restart");

    const restarted = await hippo(...TRAIN, "--restart");
    expectOk(restarted);
    expect(restarted.stderr).toMatch(/restart: removed 2 checkpoint\(s\)/);
    expect(JSON.parse(restarted.stdout).metrics.global_step).toBe(2);
  });
});
