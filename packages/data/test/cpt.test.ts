import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  IGNORE_INDEX,
  readJsonFile,
  silentProgress,
  type TokenizedExample,
  writeJsonlAtomic,
} from "@hippocrates/core";
import { describe, expect, it } from "vitest";
import { buildCptDataset, createPacker } from "../src/index.js";
import { llama2, ORI_PQAL, readJsonl, useTempDir } from "./helpers.js";

describe("packing", () => {
  it("puts EOS after each document, splits long documents across blocks and restarts segments", () => {
    const packer = createPacker({ blockSize: 4, eosTokenId: 2, padTokenId: 0 });
    const blocks = [
      ...packer.add([10, 11]),
      ...packer.add([20, 21, 22, 23, 24]),
      ...packer.add([30]),
      ...packer.finish(),
    ];
    expect(blocks.map((b) => b.inputIds)).toEqual([
      [10, 11, 2, 20],
      [21, 22, 23, 24],
      [2, 30, 2, 0],
    ]);
    expect(blocks.map((b) => b.segmentIds)).toEqual([
      [0, 0, 0, 1],
      [0, 0, 0, 0],
      [0, 1, 1, 2],
    ]);
    expect(blocks[2]?.labels).toEqual([2, 30, 2, IGNORE_INDEX]);
    expect(packer.stats()).toEqual({ tokens: 11, padded: 1, dropped: 0, blocks: 3 });
  });

  it("drops the remainder when asked", () => {
    const packer = createPacker({ blockSize: 4, eosTokenId: 2, remainder: "drop" });
    const blocks = [...packer.add([1, 1, 1, 1, 1]), ...packer.finish()];
    expect(blocks).toHaveLength(1);
    expect(packer.stats()).toMatchObject({ tokens: 6, dropped: 2, blocks: 1 });
  });
});

describe("CPT on PubMedQA contexts (ori_pqal.json)", () => {
  const t = useTempDir();

  it("packs all 1,000 abstracts: block tokens = sum of document tokens + one EOS per document", async () => {
    const tokenizer = await llama2();
    const out = join(t.dir, "cpt");
    const summary = await buildCptDataset(
      { sources: [{ kind: "pubmedqa", path: ORI_PQAL }], outDir: out, tokenizer, blockSize: 512, seed: 1 },
      silentProgress,
    );
    // Independent count: tokenize each record's contexts joined by newlines.
    const raw = (await readJsonFile(ORI_PQAL)) as Record<string, { CONTEXTS: string[] }>;
    const docs = Object.values(raw).map((r) => r.CONTEXTS.join("\n"));
    const unique = new Set(docs.map((d) => d.toLowerCase().replace(/\s+/g, " ").trim()));
    let expected = 0;
    for (const d of docs) expected += (await tokenizer.encode(d, { addSpecialTokens: false })).length + 1;
    expect(unique.size).toBe(1000);
    expect(summary.documents).toBe(1000);

    const blocks = await readJsonl<TokenizedExample>(join(out, "blocks.jsonl"));
    expect(blocks.length).toBe(summary.blocks);
    const realTokens = blocks.reduce((a, b) => a + b.labels.filter((l) => l !== IGNORE_INDEX).length, 0);
    const eos = blocks.reduce(
      (a, b) => a + b.inputIds.filter((id, i) => id === 2 && b.labels[i] === 2).length,
      0,
    );
    console.log(
      `ori_pqal: ${summary.documents} docs, ${realTokens} tokens (expected ${expected}), ${blocks.length} blocks of 512, ${summary.paddedTokens} padding`,
    );
    expect(realTokens).toBe(expected);
    expect(summary.tokens).toBe(expected);
    expect(eos).toBe(1000);
    for (const b of blocks) {
      expect(b.inputIds).toHaveLength(512);
      expect(b.segmentIds).toHaveLength(512);
    }
    expect(blocks.length).toBe(Math.ceil(expected / 512));
    expect(summary.paddedTokens).toBe(blocks.length * 512 - expected);

    const manifest = JSON.parse(await readFile(join(out, "manifest.json"), "utf8"));
    expect(manifest.builder).toBe("cpt");
    expect(manifest.sources[0].sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.outputs["blocks.jsonl"].records).toBe(blocks.length);
  });

  it("removes exact duplicates (after normalisation) and is deterministic", async () => {
    const tokenizer = await llama2();
    const file = join(t.dir, "guidelines.jsonl");
    const lines = [
      { id: "g1", source: "who", clean_text: "Give oral rehydration salts for acute diarrhoea." },
      { id: "g2", text: "  give ORAL rehydration salts for acute   diarrhoea. " },
      { id: "g3", text: "Raw text only.", clean_text: "Measure blood pressure at every visit." },
    ];
    await writeJsonlAtomic(file, lines);
    const run = async (name: string) => {
      const s = await buildCptDataset(
        {
          sources: [{ kind: "guidelines", path: file }],
          outDir: join(t.dir, name),
          tokenizer,
          blockSize: 16,
          writeDocuments: true,
        },
        silentProgress,
      );
      return {
        s,
        bytes: await readFile(join(t.dir, name, "blocks.jsonl"), "utf8"),
        manifest: await readFile(join(t.dir, name, "manifest.json"), "utf8"),
      };
    };
    const a = await run("a");
    const b = await run("b");
    expect(a.s.documents).toBe(2);
    expect(a.s.duplicates).toBe(1);
    const docs = await readJsonl<{ id: string; text: string }>(join(t.dir, "a", "documents.jsonl"));
    expect(docs.map((d) => d.id)).toEqual(["guidelines:g1", "guidelines:g3"]);
    expect(docs[1]?.text).toBe("Measure blood pressure at every visit.");
    expect(a.bytes).toBe(b.bytes);
    expect(a.manifest.replace(/"outDir".*\n/, "")).toBe(b.manifest.replace(/"outDir".*\n/, ""));
  });
});
