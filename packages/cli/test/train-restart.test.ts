/**
 * `hippo train` over damaged checkpoints, as a user meets it: a corrupt newest checkpoint is skipped with a
 * notice naming it and the one resumed from; with every checkpoint corrupt the command stops and says so
 * (naming the folder and --restart) instead of silently training from step 0; `--restart` starts over.
 */
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expectOk, initArgs, removeTempDir, runHippo, tinyLlamaFolder } from "./helpers/cli.js";

let dir: string;
beforeAll(async () => {
  // Smaller than the default: one layer of width 16, tied embeddings.
  dir = await tinyLlamaFolder("cli-restart", {
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 256,
    tie_word_embeddings: true,
  });
  const records = [
    { instruction: "Which drug treats fever?", input: "", output: "Paracetamol." },
    { instruction: "Which organ makes insulin?", input: "", output: "The pancreas." },
  ];
  await writeFile(join(dir, "sft.jsonl"), records.map((r) => `${JSON.stringify(r)}\n`).join(""));
});
afterAll(() => removeTempDir(dir));

const hippo = (...args: string[]) => runHippo(dir, args);

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
    expectOk(await hippo(...initArgs("base")));
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
