/**
 * The single-purpose subcommands end to end, as a user runs them (the bin shim in a child process, in a temp
 * folder): `hippo init` a tiny random Llama with the real Llama-2 tokenizer, `generate` from it, `eval` it on
 * real MedQA items (whole and in two shards, then `eval merge`), `train sft` a LoRA adapter, `merge` it and
 * generate from the merged folder, `train cpt` then `train dpo` over the CPT-adapted model, build an SFT
 * mixture with `hippo data sft` (decontaminated, tokenized) and train on it, and build CPT blocks with
 * `hippo data cpt`.
 */
import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  DATA,
  initArgs,
  LLAMA2_TOKENIZER,
  removeTempDir,
  runHippo,
  runHippoOk,
  tinyLlamaFolder,
} from "./helpers/cli.js";

let dir: string;
beforeAll(async () => {
  // vocab_size 1000: `hippo init --vocab-size` sets the Llama-2 tokenizer's 32000.
  dir = await tinyLlamaFolder("cli-commands", { vocab_size: 1000 });
});
afterAll(() => removeTempDir(dir));

const hippo = (...args: string[]) => runHippo(dir, args);
const ok = async (...args: string[]) => (await runHippoOk(dir, args)).stdout;

/** `hippo train <kind>` of the base model on `data` into `output`, with `flags`; its stdout. */
const train = (kind: string, data: string, output: string, ...flags: string[]) =>
  ok("train", kind, "--model", "base", "--data", data, "--output", output, ...flags, "--no-progress");

const readJson = async (...p: string[]) => JSON.parse(await readFile(join(dir, ...p), "utf8"));
/** The one file in the folder whose name starts with `prefix` (names carry the run's date). */
const one = async (folder: string, prefix: string) => {
  const names = (await readdir(join(dir, folder))).filter((n) => n.startsWith(prefix));
  expect(names).toHaveLength(1);
  return names[0] as string;
};
const readJsonl = async (...p: string[]) =>
  (await readFile(join(dir, ...p), "utf8"))
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** The raw bytes of each tensor of a .safetensors file (8-byte LE header length, JSON header, data). */
async function safetensors(
  file: string,
): Promise<Map<string, { dtype: string; shape: number[]; data: Buffer }>> {
  const buf = await readFile(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const out = new Map<string, { dtype: string; shape: number[]; data: Buffer }>();
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    out.set(name, {
      dtype: t.dtype,
      shape: t.shape,
      data: buf.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]),
    });
  }
  return out;
}

const EVAL = [
  "--tasks",
  "medqa_usmle",
  "--limit",
  "4",
  "--num-fewshot",
  "0",
  "--data-dir",
  DATA,
  "--no-progress",
];

describe("hippo subcommands on a tiny model", () => {
  it("init writes a loadable HF folder with the tokenizer's files", async () => {
    // The tokenizer's vocabulary is 32000: --vocab-size overrides the config's 1000 to match it.
    const out = await ok(...initArgs("base", "--vocab-size", "32000", "--seed", "3"));
    expect(out).toMatch(/wrote .*base \([\d,]+ parameters\)/);
    const config = await readJson("base", "config.json");
    expect(config).toMatchObject({ model_type: "llama", hidden_size: 32, vocab_size: 32000 });
    for (const f of ["model.safetensors", "tokenizer.json", "tokenizer_config.json"])
      expect(existsSync(join(dir, "base", f))).toBe(true);
    const tensors = await safetensors(join(dir, "base", "model.safetensors"));
    expect(tensors.get("model.embed_tokens.weight")?.shape).toEqual([32000, 32]);
    expect(tensors.get("model.layers.1.self_attn.k_proj.weight")?.shape).toEqual([16, 32]);
  });

  it("generate prints the continuation, the same for the same seed", async () => {
    const args = ["generate", "base", "-p", "The patient presents with", "--max-tokens", "5"];
    const a = await ok(...args);
    expect(a.trim().length).toBeGreaterThan(0);
    expect(a).not.toContain("The patient presents with");
    expect(await ok(...args)).toBe(a);
  });

  it("eval writes lm-eval results and the contexts; two shards merged equal the whole run", async () => {
    const table = await ok(
      "eval",
      "--model",
      "base",
      ...EVAL,
      "--output",
      "results.json",
      "--write-out",
      "all",
    );
    expect(table).toContain("| medqa_usmle |");
    const whole = await readJson("results.json");
    const m = whole.results.medqa_usmle;
    expect(typeof m["acc,none"]).toBe("number");
    expect(typeof m["acc_norm,none"]).toBe("number");
    expect(whole["n-shot"].medqa_usmle).toBe(0);
    expect(whole["n-samples"].medqa_usmle.effective).toBe(4);
    // lm-evaluation-harness's layout: <output>/<model>/results_<date>.json, samples_<task>_<date>.jsonl.
    expect(await readJson("all", "base", await one("all/base", "results_"))).toEqual(whole);

    // The written contexts are the real test questions, zero-shot.
    const questions = (await readFile(join(DATA, "benchmarks/medqa/medqa_us_4options_test.jsonl"), "utf8"))
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { question: string }).question);
    const samples = await readJsonl("all", "base", await one("all/base", "samples_medqa_usmle_"));
    expect(samples).toHaveLength(4);
    const contextOf = (s: Record<string, unknown>) =>
      (s.arguments as { gen_args_0: { arg_0: string } }).gen_args_0.arg_0;
    for (const s of samples) {
      expect(contextOf(s)).toContain(questions[(s.hippo as { doc_index: number }).doc_index]);
      expect(contextOf(s)).toMatch(/^Question: /);
    }

    for (const i of [0, 1])
      await ok("eval", "--model", "base", ...EVAL, "--shard", `${i}/2`, "--write-out", `shard${i}`);
    const shardIds = [
      ...(await readJsonl("shard0", "base", await one("shard0/base", "samples_medqa_usmle_"))),
      ...(await readJsonl("shard1", "base", await one("shard1/base", "samples_medqa_usmle_"))),
    ].map((s) => s.doc_id);
    expect(shardIds).toHaveLength(4);
    expect(new Set(shardIds)).toEqual(new Set(samples.map((s) => s.doc_id)));

    // `eval merge` takes none of eval's required flags, and without --model eval itself says what is missing.
    const missing = await hippo("eval", "--tasks", "medqa_usmle");
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('key "--model": required option --model not specified');
    await ok("eval", "merge", "shard0", "shard1", "--output", "merged.json", "--write-out", "merged");
    const merged = (await readJson("merged.json")).results.medqa_usmle;
    expect(merged["acc,none"]).toBeCloseTo(m["acc,none"], 12);
    expect(merged["acc_norm,none"]).toBeCloseTo(m["acc_norm,none"], 12);
    const mergedSamples = await readJsonl("merged", "base", await one("merged/base", "samples_medqa_usmle_"));
    expect(mergedSamples.map((s) => s.doc_id).sort()).toEqual(samples.map((s) => s.doc_id).sort());
  });

  it("train sft writes a PEFT adapter; merge folds it into the targeted weights only; generate loads it", async () => {
    const records = [
      { instruction: "Which drug treats fever?", input: "", output: "Paracetamol." },
      { instruction: "Which organ makes insulin?", input: "", output: "The pancreas." },
      { instruction: "Which vitamin prevents scurvy?", input: "", output: "Vitamin C." },
      { instruction: "Which test monitors warfarin?", input: "", output: "The INR." },
    ];
    await writeFile(join(dir, "sft.jsonl"), records.map((r) => `${JSON.stringify(r)}\n`).join(""));
    const out = await train(
      "sft",
      "sft.jsonl",
      "sft",
      "--max-steps",
      "2",
      "--batch-size",
      "2",
      "--lr",
      "0.01",
      "--lora-r",
      "4",
      // Only the flags given change the preset (r32/alpha32 on all linear layers), so alpha is given too;
      // HfArgumentParser's spelling is accepted beside ours.
      "--lora_alpha",
      "8",
      "--lora-targets",
      "q_proj,v_proj",
    );
    expect(JSON.parse(out).metrics.global_step).toBe(2);
    expect(await readJson("sft", "adapter_config.json")).toMatchObject({
      peft_type: "LORA",
      r: 4,
      lora_alpha: 8,
      target_modules: ["q_proj", "v_proj"],
    });
    const adapter = await safetensors(join(dir, "sft", "adapter_model.safetensors"));
    expect([...adapter.keys()].some((k) => k.includes("q_proj.lora_A"))).toBe(true);
    expect((await readJson("sft", "trainer_state.json")).global_step).toBe(2);

    expect(await ok("merge", "--model", "base", "--adapter", "sft", "--output", "merged-model")).toContain(
      "wrote",
    );
    expect(existsSync(join(dir, "merged-model", "tokenizer.json"))).toBe(true);
    const base = await safetensors(join(dir, "base", "model.safetensors"));
    const merged = await safetensors(join(dir, "merged-model", "model.safetensors"));
    expect([...merged.keys()].sort()).toEqual([...base.keys()].sort());
    const q = "model.layers.0.self_attn.q_proj.weight";
    const k = "model.layers.0.self_attn.k_proj.weight";
    expect(merged.get(q)?.data.equals(base.get(q)?.data as Buffer)).toBe(false);
    expect(merged.get(k)?.data.equals(base.get(k)?.data as Buffer)).toBe(true);

    const text = await ok("generate", "merged-model", "-p", "Which drug treats fever?", "--max-tokens", "4");
    expect(text.trim().length).toBeGreaterThan(0);
  });

  it("train cpt writes an MLP adapter; train dpo trains a new q/v adapter over base + that adapter", async () => {
    const docs = [
      "Aspirin inhibits cyclooxygenase and reduces fever in adults.",
      "Metformin lowers hepatic glucose production in type 2 diabetes.",
      "Warfarin is monitored with the international normalized ratio.",
      "Insulin is made by the beta cells of the pancreas.",
    ];
    await writeFile(join(dir, "docs.jsonl"), docs.map((text) => `${JSON.stringify({ text })}\n`).join(""));
    const cpt = JSON.parse(
      await train(
        "cpt",
        "docs.jsonl",
        "cpt",
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--grad-accum",
        "1",
        "--gradient-checkpointing",
        "--max-length",
        "16",
        "--lr",
        "0.01",
      ),
    );
    expect(cpt.metrics.global_step).toBe(2);
    // The CPT preset: LoRA r8 / alpha 16 on the MLP.
    expect(await readJson("cpt", "adapter_config.json")).toMatchObject({
      peft_type: "LORA",
      r: 8,
      lora_alpha: 16,
      target_modules: ["gate_proj", "up_proj", "down_proj"],
    });
    const cptLog = await readJsonl("cpt", "metrics.jsonl");
    expect(cptLog.filter((e) => typeof e.loss === "number").map((e) => e.step)).toEqual([1, 2]);

    const pairs = [
      { prompt: "Which drug treats fever?", chosen: "Paracetamol.", rejected: "Insulin." },
      { prompt: "Which organ makes insulin?", chosen: "The pancreas.", rejected: "The skin." },
    ];
    await writeFile(join(dir, "pairs.jsonl"), pairs.map((p) => `${JSON.stringify(p)}\n`).join(""));
    const dpo = JSON.parse(
      await train(
        "dpo",
        "pairs.jsonl",
        "dpo",
        "--adapter",
        "cpt",
        "--max-steps",
        "2",
        "--batch-size",
        "1",
        "--grad-accum",
        "1",
        "--lr",
        "0.01",
      ),
    );
    expect(dpo.metrics.global_step).toBe(2);
    expect(await readJson("dpo", "adapter_config.json")).toMatchObject({
      peft_type: "LORA",
      target_modules: ["q_proj", "v_proj"],
    });
    const dpoLog = await readJsonl("dpo", "metrics.jsonl");
    const first = dpoLog.find((e) => e.step === 1) as Record<string, number>;
    for (const key of [
      "rewards/chosen",
      "rewards/rejected",
      "rewards/accuracies",
      "rewards/margins",
      "logps/chosen",
    ])
      expect(typeof first[key], key).toBe("number");
    // Step 1 starts from B = 0: the policy equals its reference (base + CPT adapter), so the rewards are 0.
    expect(Math.abs(first["rewards/chosen"] as number)).toBeLessThan(1e-4);
    // Step 2 has moved: the new adapter changed the policy away from the reference.
    const second = dpoLog.find((e) => e.step === 2) as Record<string, number>;
    expect(Math.abs(second["rewards/margins"] as number)).toBeGreaterThan(0);
  });

  it("data sft mixes Alpaca and MedQA records, drops test-set items, tokenizes; train sft takes its output", async () => {
    const alpaca = [
      { instruction: "Which drug treats fever?", input: "", output: "Paracetamol." },
      { instruction: "Which organ makes insulin?", input: "", output: "The pancreas." },
      { instruction: "Which vitamin prevents scurvy?", input: "", output: "Vitamin C." },
      { instruction: "Which test monitors warfarin?", input: "", output: "The INR." },
    ];
    await writeFile(join(dir, "alpaca.jsonl"), alpaca.map((r) => `${JSON.stringify(r)}\n`).join(""));
    // Five MedQA test questions offered as training data: decontamination against the test file drops them.
    const medqaTest = join(DATA, "benchmarks", "medqa", "medqa_us_4options_test.jsonl");
    const five = (await readFile(medqaTest, "utf8")).split("\n").slice(0, 5).join("\n");
    await writeFile(join(dir, "medqa-part.jsonl"), `${five}\n`);
    await writeFile(
      join(dir, "sft.yaml"),
      [
        "sources:",
        "  - {format: alpaca, path: alpaca.jsonl, count: all}",
        "  - {format: medqa, path: medqa-part.jsonl, count: all}",
        `decontaminateAgainst: [${JSON.stringify(medqaTest)}]`,
        "outDir: sft-data",
        "seed: 7",
        "",
      ].join("\n"),
    );
    await ok("data", "sft", "sft.yaml", "--tokenizer", LLAMA2_TOKENIZER);
    const manifest = await readJson("sft-data", "manifest.json");
    expect(manifest.builder).toBe("sft");
    expect(manifest.counts.records).toBe(4);
    expect(manifest.sources.map((s: { dropped: number }) => s.dropped)).toEqual([0, 5]);
    const records = await readJsonl("sft-data", "instructions.jsonl");
    expect(records).toHaveLength(4);
    const tokenized = await readJsonl("sft-data", "tokenized.jsonl");
    expect(tokenized).toHaveLength(4);
    for (const t of tokenized) {
      const labels = t.labels as number[];
      // The prompt is masked (-100), the response is not.
      expect(labels[0]).toBe(-100);
      expect(labels.some((l) => l >= 0)).toBe(true);
      expect(labels).toHaveLength((t.inputIds as number[]).length);
    }
    const out = JSON.parse(
      await train(
        "sft",
        "sft-data/instructions.jsonl",
        "sft-from-data",
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--lora-r",
        "4",
      ),
    );
    expect(out.metrics.global_step).toBe(1);
  });

  it("data cpt packs deduplicated documents into blocks and writes manifest.json", async () => {
    const docs = [
      "Aspirin inhibits cyclooxygenase and reduces fever in adults.",
      "Metformin lowers hepatic glucose production in type 2 diabetes.",
      "Metformin lowers hepatic glucose production in type 2 diabetes.",
      "Warfarin is monitored with the international normalized ratio.",
    ];
    await writeFile(
      join(dir, "guidelines.jsonl"),
      docs.map((d, i) => `${JSON.stringify({ id: String(i), source: "who", clean_text: d })}\n`).join(""),
    );
    await writeFile(
      join(dir, "cpt.yaml"),
      "sources:\n  - kind: guidelines\n    path: guidelines.jsonl\noutDir: cpt-data\nblockSize: 16\n",
    );
    const summary = JSON.parse(await ok("data", "cpt", "cpt.yaml", "--tokenizer", LLAMA2_TOKENIZER));
    expect(summary).toMatchObject({ documents: 3, duplicates: 1 });
    const manifest = await readJson("cpt-data", "manifest.json");
    expect(manifest.builder).toBe("cpt");
    expect(manifest.counts).toMatchObject({ documents: 3, duplicates: 1 });
    const blocks = await readJsonl("cpt-data", "blocks.jsonl");
    expect(blocks).toHaveLength(manifest.counts.blocks);
    expect(manifest.outputs["blocks.jsonl"].records).toBe(blocks.length);
    for (const b of blocks) expect(b.inputIds).toHaveLength(16);
    // Every document's tokens + EOS (id 2) once each: 3 EOS across the packed blocks.
    expect(blocks.flatMap((b) => b.inputIds as number[]).filter((t) => t === 2)).toHaveLength(3);
  });
});
