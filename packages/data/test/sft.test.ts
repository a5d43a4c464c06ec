import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { IGNORE_INDEX, type InstructionRecord, silentProgress, writeJsonlAtomic } from "@hippocrates/core";
import { describe, expect, it } from "vitest";
import {
  buildSftDataset,
  CHATML_TEMPLATE,
  createBadRecords,
  createNgramIndex,
  medqaOnlyMixture,
  paperMixture,
  readInstructions,
  readTestTexts,
  resolveCounts,
  tokenizeInstruction,
} from "../src/index.js";
import {
  CONVERSATION,
  collect,
  labelledAndMasked,
  labelledRuns,
  llama2,
  MEDMCQA_DEV,
  MEDQA_TEST,
  ORI_PQAL,
  PUBMEDQA_TEST500,
  readJsonl,
  useTempDir,
} from "./helpers.js";

describe("evaluation instructions from the benchmark formats", () => {
  it("MedQA, MedMCQA (shared variant) and PubMedQA (ori_pqal) become Meditron-style chats", async () => {
    const bad = createBadRecords();
    const medqa = await collect(readInstructions({ format: "medqa", path: MEDQA_TEST }, bad));
    expect(medqa).toHaveLength(1273);
    const first = medqa[0] as InstructionRecord;
    expect(first.id).toBe("medqa:0");
    expect(first.messages[0]?.content).toMatch(
      /^You are a medical doctor answering real-world medical entrance exam questions\..*from A to D\./,
    );
    expect(first.messages[1]?.content).toMatch(
      /^Question: A junior orthopaedic surgery resident[\s\S]*\nOptions:\nA\. Disclose the error to the patient and put it in the operative report\nB\. Tell the attending/,
    );
    expect(first.messages[2]).toEqual({
      role: "assistant",
      content: "B. Tell the attending that he cannot fail to disclose this mistake",
    });

    const medmcqa = await collect(readInstructions({ format: "medmcqa", path: MEDMCQA_DEV }, bad));
    expect(medmcqa).toHaveLength(4183);
    expect(medmcqa[0]?.messages[1]?.content).toContain(
      "\nA. Impulse through myelinated fibers is slower than non-myelinated fibers\n",
    );
    expect(medmcqa[0]?.messages[2]?.content).toBe(
      "A. Impulse through myelinated fibers is slower than non-myelinated fibers",
    );

    const pubmedqa = await collect(readInstructions({ format: "pubmedqa", path: ORI_PQAL }, bad));
    expect(pubmedqa).toHaveLength(1000);
    // PMIDs are integer-like keys: a JavaScript object lists them in ascending order, not file order.
    expect(pubmedqa[0]?.id).toBe("pubmedqa:1571683");
    const lace = pubmedqa.find((r) => r.id === "pubmedqa:21645374");
    expect(lace?.messages[1]?.content).toMatch(
      /^Context: Programmed cell death[\s\S]*\n\nQuestion: Do mitochondria play a role/,
    );
    expect(lace?.messages[2]?.content).toBe("yes");

    const harness = await collect(
      readInstructions({ format: "medqa", path: MEDQA_TEST, style: "harness" }, bad),
    );
    expect(harness[0]?.messages[0]?.content).toMatch(
      /\n\(A\) Disclose the error .* \(B\) Tell the attending .*\nAnswer:$/,
    );
    expect(bad.total()).toBe(0);
  });
});

describe("decontamination against the benchmark test files", () => {
  const t = useTempDir();

  it("drops test items fed back as training data and keeps unrelated ones", async () => {
    const clean = join(t.dir, "clean.json");
    await writeFile(
      clean,
      JSON.stringify([
        {
          instruction:
            "Explain what a randomised controlled trial is and why blinding matters for the outcome assessment.",
          input: "",
          output: "An RCT assigns participants at random ...",
        },
        {
          instruction: "List three common causes of iron deficiency anaemia in adults.",
          input: "",
          output: "Blood loss, poor intake, malabsorption.",
        },
      ]),
    );
    const summary = await buildSftDataset(
      {
        sources: [
          { name: "medqa_as_train", format: "medqa", path: MEDQA_TEST },
          { name: "medmcqa_as_train", format: "medmcqa", path: MEDMCQA_DEV },
          { name: "pubmedqa_as_train", format: "pubmedqa", path: ORI_PQAL },
          { name: "clean", format: "alpaca", path: clean },
        ],
        decontaminateAgainst: [MEDQA_TEST, MEDMCQA_DEV, PUBMEDQA_TEST500],
        outDir: join(t.dir, "sft"),
        seed: 1,
      },
      silentProgress,
    );
    const d = summary.decontamination;
    console.log("dropped per source:", d.dropped, "kept:", d.kept, "example:", d.examples[0]);
    expect(d.n).toBe(13);
    expect(d.dropped.medqa_as_train).toBe(1273);
    expect(d.kept.medqa_as_train).toBeUndefined();
    expect(d.dropped.medmcqa_as_train).toBe(4183);
    // Only the official 500 test PMIDs were in the index: exactly those 500 of the 1,000 PQA-L items go.
    expect(d.dropped.pubmedqa_as_train).toBe(500);
    expect(d.kept.pubmedqa_as_train).toBe(500);
    expect(d.kept.clean).toBe(2);
    expect(d.dropped.clean).toBeUndefined();
    const written = await readJsonl<InstructionRecord>(join(t.dir, "sft", "instructions.jsonl"));
    expect(written).toHaveLength(summary.records);
    const testIds = new Set(
      Object.keys(JSON.parse(await readFile(join(ORI_PQAL, "../test_ground_truth.json"), "utf8"))),
    );
    expect(
      written
        .filter((r) => r.source === "pubmedqa_as_train")
        .every((r) => !testIds.has(r.id.split(":")[1] as string)),
    ).toBe(true);
    const manifest = JSON.parse(await readFile(join(t.dir, "sft", "manifest.json"), "utf8"));
    expect(manifest.decontamination.dropped).toEqual(d.dropped);
    expect(manifest.config.decontaminateAgainst).toHaveLength(3);
  });

  it("short test items are matched whole; n is configurable", async () => {
    const index = createNgramIndex(
      [
        "Drug of choice for syphilis?",
        "one two three four five six seven eight nine ten eleven twelve thirteen fourteen",
      ],
      13,
    );
    expect(index.matches("Q: drug of choice for SYPHILIS? A: penicillin")).toBe(true);
    expect(index.matches("drug of choice for malaria")).toBe(false);
    expect(
      index.firstMatch("zero one two three four five six seven eight nine ten eleven twelve thirteen"),
    ).toBe("one two three four five six seven eight nine ten eleven twelve thirteen");
    expect(index.matches("one two three four five six seven eight nine ten eleven twelve")).toBe(false);
    expect(createNgramIndex(["a b c d e"], 3).matches("x c d e y")).toBe(true);
    expect((await readTestTexts(MEDQA_TEST)).length).toBe(1273);
  });
});

describe("SFT tokenization", () => {
  it("masks the prompt and labels the response and EOS, token by token (Llama-2, default template)", async () => {
    const tokenizer = await llama2();
    const record: InstructionRecord = {
      id: "x",
      source: "t",
      messages: [
        { role: "user", content: "What is hypertension?" },
        { role: "assistant", content: "High blood pressure." },
      ],
    };
    const ex = await tokenizeInstruction(record, tokenizer);
    if (!ex) throw new Error("no example");
    const prompt = await tokenizer.encode("Human: What is hypertension?\nAssistant: ", {
      addSpecialTokens: false,
    });
    const response = await tokenizer.encode("High blood pressure.", { addSpecialTokens: false });
    expect(ex.inputIds).toEqual([1, ...prompt, ...response, 2]);
    expect(ex.labels).toEqual([IGNORE_INDEX, ...prompt.map(() => IGNORE_INDEX), ...response, 2]);
    // Read it back: what is trained on is the answer and the end of sequence, nothing else.
    expect(await labelledAndMasked(ex)).toEqual({
      labelled: "High blood pressure.</s>",
      masked: "Human: What is hypertension?\nAssistant: ",
    });
    for (let i = 0; i < ex.inputIds.length; i++) {
      const inResponse = i > prompt.length;
      expect(ex.labels[i]).toBe(inResponse ? ex.inputIds[i] : IGNORE_INDEX);
    }
  });

  it("multi-turn: every assistant turn labelled, system, user turns and separators masked; truncation", async () => {
    const tokenizer = await llama2();
    const record: InstructionRecord = { id: "y", source: "t", messages: CONVERSATION };
    const ex = await tokenizeInstruction(record, tokenizer, { template: CHATML_TEMPLATE });
    if (!ex) throw new Error("no example");
    const spans = await Promise.all(labelledRuns(ex).map((run) => tokenizer.decode(run)));
    expect(spans).toEqual(["Hello.<|im_end|></s>", "Rest.<|im_end|></s>"]);
    const short = await tokenizeInstruction(record, tokenizer, { template: CHATML_TEMPLATE, maxLength: 8 });
    expect(short).toBeUndefined();
  });
});

describe("mixtures", () => {
  const t = useTempDir();

  it("weighted counts add up, sampling is seeded and deterministic, and tokenized output is written", async () => {
    const a = join(t.dir, "a.jsonl");
    const b = join(t.dir, "b.jsonl");
    await writeJsonlAtomic(
      a,
      Array.from({ length: 30 }, (_, i) => ({ instruction: `alpha ${i}`, output: `A${i}` })),
    );
    await writeJsonlAtomic(
      b,
      Array.from({ length: 5 }, (_, i) => ({ instruction: `beta ${i}`, output: `B${i}` })),
    );
    expect(
      resolveCounts(
        [
          { format: "alpaca", path: a, weight: 2 },
          { format: "alpaca", path: b, weight: 1 },
        ],
        [30, 5],
        10,
      ),
    ).toEqual([7, 3]);
    const tokenizer = await llama2();
    const run = async (seed: number, dir: string) =>
      buildSftDataset(
        {
          sources: [
            { name: "a", format: "alpaca", path: a, count: 12 },
            { name: "b", format: "alpaca", path: b, count: 12 },
          ],
          outDir: join(t.dir, dir),
          seed,
          tokenizer,
        },
        silentProgress,
      );
    const s1 = await run(7, "m1");
    const s2 = await run(7, "m2");
    const s3 = await run(8, "m3");
    expect(s1.perSource).toEqual({
      a: { read: 30, afterDecontamination: 30, taken: 12 },
      b: { read: 5, afterDecontamination: 5, taken: 12 },
    });
    const f1 = await readFile(join(t.dir, "m1", "instructions.jsonl"), "utf8");
    expect(await readFile(join(t.dir, "m2", "instructions.jsonl"), "utf8")).toBe(f1);
    expect(await readFile(join(t.dir, "m2", "manifest.json"), "utf8")).toBe(
      await readFile(join(t.dir, "m1", "manifest.json"), "utf8"),
    );
    expect(await readFile(join(t.dir, "m3", "instructions.jsonl"), "utf8")).not.toBe(f1);
    const recs = await readJsonl<InstructionRecord>(join(t.dir, "m1", "instructions.jsonl"));
    // b (5 records) upsampled to 12: each record at least twice.
    const bIds = recs.filter((r) => r.source === "b").map((r) => r.id);
    expect(new Set(bIds).size).toBe(5);
    // a (30) sampled without replacement.
    expect(new Set(recs.filter((r) => r.source === "a").map((r) => r.id)).size).toBe(12);
    const tok = await readJsonl<{ id: string; inputIds: number[]; labels: number[] }>(
      join(t.dir, "m1", "tokenized.jsonl"),
    );
    expect(tok.map((x) => x.id)).toEqual(recs.map((r) => r.id));
    expect(s1.tokenized?.examples).toBe(24);
    expect(s2.records).toBe(24);
    expect(s3.records).toBe(24);
  });

  it("documents the paper mix and the MedQA-only variant", () => {
    const mix = paperMixture("/data");
    expect(mix.map((s) => s.name)).toContain("medqa_train");
    expect(
      mix
        .filter((s) => ["medmcqa_train", "medqa_train", "pubmedqa_train"].includes(s.name))
        .map((s) => s.format),
    ).toEqual(["medmcqa", "medqa", "pubmedqa"]);
    expect(medqaOnlyMixture("/data").map((s) => s.name)).toEqual(["medqa_train"]);
  });
});
