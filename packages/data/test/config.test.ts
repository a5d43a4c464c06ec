import { join } from "node:path";
import { isHippoError, silentProgress } from "@hippocrates/core";
import { describe, expect, it } from "vitest";
import {
  buildCptDataset,
  cptConfigSchema,
  cptOptionsFromConfig,
  parseDataConfig,
  preferenceConfigSchema,
  sftConfigSchema,
  sftOptionsFromConfig,
} from "../src/index.js";
import { llama2, ORI_PQAL, PUBMEDQA_TEST500, useTempDir } from "./helpers.js";

describe("builder configs", () => {
  const t = useTempDir();

  it("a CPT config file drives the builder: PQA-L contexts decontaminated against the 500 test items", async () => {
    const config = parseDataConfig(cptConfigSchema, {
      sources: [{ kind: "pubmedqa", path: ORI_PQAL, name: "pqal" }],
      outDir: join(t.dir, "cpt"),
      blockSize: 256,
      remainder: "drop",
      decontaminateAgainst: [PUBMEDQA_TEST500],
    });
    const summary = await buildCptDataset(cptOptionsFromConfig(config, await llama2()), silentProgress);
    console.log(
      `CPT on PQA-L against the 500 test items: ${summary.contaminated} dropped, ${summary.documents} kept`,
    );
    expect(summary.contaminated).toBe(500);
    expect(summary.documents).toBe(500);
    expect(summary.paddedTokens).toBe(0);
    expect(summary.blocks * 256 + summary.droppedTokens).toBe(summary.tokens);
    expect(summary.manifest.sources[0]).toMatchObject({
      name: "pqal",
      records: 1000,
      kept: 500,
      contaminated: 500,
    });
  });

  it("names the bad key of a config", () => {
    const bad = (schema: Parameters<typeof parseDataConfig>[0], value: unknown) => {
      try {
        parseDataConfig(schema, value, "data.json");
      } catch (e) {
        if (isHippoError(e, "INVALID_CONFIG")) return e;
      }
      throw new Error("expected INVALID_CONFIG");
    };
    const e1 = bad(cptConfigSchema, { sources: [{ kind: "books", path: "x" }], outDir: "o" });
    expect(e1.location).toEqual({ file: "data.json", key: "sources.0.kind" });
    expect(e1.got).toBe('"books"');
    const e2 = bad(sftConfigSchema, { sources: [{ format: "alpaca", path: "a" }], outDir: "o", sed: 1 });
    expect(e2.message).toMatch(/sed/);
    const e3 = bad(preferenceConfigSchema, {
      input: "i",
      outDir: "o",
      model: "m",
      judge: { concurrency: 0 },
    });
    expect(e3.location.key).toBe("judge.concurrency");
    const e4 = bad(sftConfigSchema, { sources: [{ format: "medqa", path: "a", count: -1 }], outDir: "o" });
    expect(e4.location.key).toBe("sources.0.count");
  });

  it("maps an SFT config with a template name to tokenize options", async () => {
    const cfg = parseDataConfig(sftConfigSchema, {
      sources: [{ format: "alpaca", path: "a" }],
      outDir: "o",
      template: "chatml",
      maxLength: 512,
    });
    const opts = sftOptionsFromConfig(cfg, await llama2());
    expect(opts.tokenize?.template).toMatchObject({ kind: "string", name: "chatml" });
    expect(opts.tokenize?.maxLength).toBe(512);
    expect(sftOptionsFromConfig(cfg).tokenizer).toBeUndefined();
  });
});
