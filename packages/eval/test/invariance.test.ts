/**
 * Batch invariance, where ties abound: a random Llama with a 64-token vocabulary and initializer range 0.02
 * gives every option nearly the same log-likelihood, so a change in the last bits of a float32 sum flips
 * the argmax. A document's log-likelihoods must therefore depend on that document alone (one model call per
 * document, whole-document cache entries), whatever else runs beside it: an interrupted and resumed run
 * (with a torn cache line, as a SIGKILL mid-append leaves), a sharded and merged run (shards with different
 * batch sizes), and a rerun from a full cache write byte-identical results and samples files to one clean
 * run. Several tasks and profiles: letters (medqa_4options, MMLU 5-shot), fold-0 PubMedQA 5-shot (long
 * contexts, left-truncated), option texts (v0.3 medqa_usmle).
 */
import { appendFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { initBackend } from "@hippocrates/backend";
import type { LogLikelihoodRequest, ScoringModel } from "@hippocrates/core";
import { asScoringModel, createRandomModel } from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type EvalOutput,
  type EvalTokenizer,
  evaluate,
  mergeShards,
  type OutputFiles,
  pyIsoDateId,
  writeOutput,
} from "../src/index.js";
import { dataDirWithTrainSplits } from "./helpers.js";

/** Characters as tokens 3..62 (BOS 1, EOS 2): a 64-token vocabulary for real benchmark text. */
const charTokenizer: EvalTokenizer = {
  bosTokenId: 1,
  eosTokenId: 2,
  encode: async (text) => Array.from(text, (c) => 3 + ((c.codePointAt(0) as number) % 60)),
};

const NOW = () => new Date(2024, 0, 2, 3, 4, 5, 678).getTime();
const DATE = pyIsoDateId(NOW());

let lm: ReturnType<typeof createRandomModel>;
let tmp: string;
let data: Awaited<ReturnType<typeof dataDirWithTrainSplits>>;
beforeAll(async () => {
  data = await dataDirWithTrainSplits();
  await initBackend({ backend: "wasm" });
  lm = createRandomModel(
    {
      model_type: "llama",
      vocab_size: 64,
      hidden_size: 32,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 192,
      rms_norm_eps: 1e-6,
      initializer_range: 0.02,
      tie_word_embeddings: false,
      bos_token_id: 1,
      eos_token_id: 2,
    },
    { seed: 11 },
  );
  tmp = await mkdtemp(join(tmpdir(), "hippo-eval-invariance-"));
});
afterAll(async () => {
  lm?.dispose();
  await rm(tmp, { recursive: true, force: true });
  await data?.remove();
});

/** The local model's scorer, 4 rows per forward pass; counts the calls and the documents each holds. */
function scorer(onCall?: (reqs: LogLikelihoodRequest[]) => void): ScoringModel & { calls: number } {
  const inner = asScoringModel(lm, { name: "random-vocab64-seed11", batchSize: 16 });
  const m = {
    name: inner.name,
    maxLength: inner.maxLength,
    calls: 0,
    logLikelihood: async (reqs: LogLikelihoodRequest[], o?: Parameters<typeof inner.logLikelihood>[1]) => {
      m.calls++;
      onCall?.(reqs);
      return inner.logLikelihood(reqs, o);
    },
  };
  return m;
}

const RUNS = [
  { profile: "current", tasks: ["medqa_4options", "pubmedqa", "mmlu_anatomy"], numFewshot: 5 },
  { profile: "v0.3", tasks: ["medqa_usmle"], numFewshot: 0 },
] as const;

async function files(f: OutputFiles | undefined): Promise<Record<string, string>> {
  if (!f) throw new Error("no files written");
  const out: Record<string, string> = { results: await readFile(f.results, "utf8") };
  for (const [t, p] of Object.entries(f.samples)) out[t] = await readFile(p, "utf8");
  return out;
}

describe.each(RUNS)("byte-identical files ($profile: $tasks)", (run) => {
  const base = () => ({
    tokenizer: charTokenizer,
    dataDir: data.dir,
    limit: 7,
    logSamples: true,
    now: NOW,
    ...run,
  });
  const tasks = [...run.tasks];
  const out = (name: string) => join(tmp, `${run.profile}-${name}`);
  let clean: Record<string, string>;

  it("one clean run: one model call per document, holding all its options", async () => {
    const before = tf.memory().numTensors;
    const sizes: number[] = [];
    const m = scorer((reqs) => sizes.push(reqs.length));
    const o = await evaluate({ ...base(), tasks, model: m, batchSize: 3, outputPath: out("clean") });
    clean = await files(o.files);
    expect(m.calls).toBe(tasks.length * 7);
    expect(sizes.every((n) => n === 4 || n === 3)).toBe(true);
    expect(Object.keys(clean).sort()).toEqual(["results", ...tasks].sort());
    expect(clean.results).toContain(`"fewshot_seed": ${run.profile === "current" ? 1234 : "null"}`);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("interrupted (and a torn cache line) then resumed", async () => {
    const cacheDir = out("cache");
    const ctrl = new AbortController();
    const m = scorer();
    const stopping: ScoringModel = {
      name: m.name,
      maxLength: m.maxLength,
      logLikelihood: async (r, o) => {
        const res = await m.logLikelihood(r, o);
        if (m.calls === 5) ctrl.abort();
        return res;
      },
    };
    await expect(
      evaluate({ ...base(), tasks, model: stopping, batchSize: 1, cacheDir, signal: ctrl.signal }),
    ).rejects.toThrow(/interrupted/);
    // A SIGKILL during an append leaves half a line behind.
    const { readdir } = await import("node:fs/promises");
    const cacheFile = join(cacheDir, (await readdir(cacheDir))[0] as string);
    await appendFile(cacheFile, '{"k":"0123456789abcdef","r":[[-1.5,fal');
    const warnings: string[] = [];
    const resumedModel = scorer();
    const o = await evaluate({
      ...base(),
      tasks,
      model: resumedModel,
      batchSize: 3,
      cacheDir,
      outputPath: out("resumed"),
      log: (w) => warnings.push(w),
    });
    expect(resumedModel.calls).toBe(tasks.length * 7 - 5);
    expect(warnings).toEqual([expect.stringMatching(/discarded 1 unusable line of the request cache/)]);
    expect(await files(o.files)).toEqual(clean);

    // A rerun from the full cache never calls the model.
    const never: ScoringModel = {
      name: m.name,
      maxLength: m.maxLength,
      logLikelihood: async () => {
        throw new Error("the cache should have answered");
      },
    };
    const again = await evaluate({
      ...base(),
      tasks,
      model: never,
      batchSize: 3,
      cacheDir,
      outputPath: out("cached"),
    });
    expect(await files(again.files)).toEqual(clean);
  });

  it("three shards (batch sizes 3, 1, 2) merged", async () => {
    const shards: EvalOutput[] = [];
    for (const [index, batchSize] of [3, 1, 2].entries())
      shards.push(
        await evaluate({ ...base(), tasks, model: scorer(), batchSize, shard: { index, count: 3 } }),
      );
    const merged = mergeShards(shards);
    const written = await writeOutput(out("merged"), merged, { logSamples: true, dateId: DATE });
    expect(await files(written)).toEqual(clean);
  });
});
