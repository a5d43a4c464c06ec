/**
 * The eval on the real local model: a tiny random-weight Llama with the Llama-2 vocabulary. acc/acc_norm by
 * hand (a full forward per option, log-softmax in float64 here) equal the package's (the model's shared-context
 * scorer), and the scale features (progress, resume, shards) work end to end on it. The full 1,273-question
 * MedQA run takes minutes on the wasm backend, so it runs only with HIPPO_EVAL_FULL=1; the default run covers
 * the first 12 questions of the v0.3 order. One document per model call (batchSize 1): the model
 * batches rows of one call together, and float32 results can differ in the last bits when documents are
 * batched differently, so exact equality of shards and one run needs the same call composition.
 */
import { join } from "node:path";
import { initBackend } from "@hippocrates/backend";
import { createBarReporter } from "@hippocrates/core";
import { asScoringModel, createRandomModel } from "@hippocrates/model";
import * as tf from "@tensorflow/tfjs-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildContexts, defaultRegistry, mergeShards, pyLen } from "../src/index.js";
import { DATA_DIR, evaluateShared, llama2, useTempDir } from "./helpers.js";
import { TINY_LLAMA2_VOCAB } from "./localModel.js";

const FULL = process.env.HIPPO_EVAL_FULL === "1";
const LIMIT = FULL ? undefined : 12;

describe("local TensorFlow.js model (tiny random Llama, Llama-2 vocabulary)", () => {
  let lm: ReturnType<typeof createRandomModel>;
  const tmp = useTempDir("hippo-eval-model-");
  beforeAll(async () => {
    await initBackend({ backend: "wasm" });
    lm = createRandomModel({ ...TINY_LLAMA2_VOCAB }, { seed: 7 });
  });
  afterAll(() => lm?.dispose());
  const scorer = (o: { shareContext?: boolean } = {}) =>
    asScoringModel(lm, { name: "tiny-llama2-vocab-seed7", ...o });

  it("acc and acc_norm by hand equal the package's (2 MedQA questions)", async () => {
    const task = defaultRegistry.get("medqa_usmle", "v0.3");
    const built = buildContexts(task, await task.load(DATA_DIR), {
      profile: "v0.3",
      numFewshot: 0,
      limit: 2,
    });
    const out = await evaluateShared({ model: scorer(), tasks: ["medqa_usmle"], limit: 2 });
    const tok = await llama2();
    for (const b of built) {
      const ctx = await tok.encode(b.context, { addSpecialTokens: false });
      const lls: number[] = [];
      for (const opt of b.doc.options) {
        const whole = await tok.encode(`${b.context} ${opt}`, { addSpecialTokens: false });
        const logits = lm.forward([whole]).logits as tf.Tensor3D;
        const data = (await logits.array())[0] as number[][];
        logits.dispose();
        let ll = 0;
        for (let p = ctx.length; p < whole.length; p++) {
          const row = data[p - 1] as number[];
          const max = Math.max(...row);
          const lse = max + Math.log(row.reduce((a, x) => a + Math.exp(x - max), 0));
          ll += (row[whole[p] as number] as number) - lse;
        }
        lls.push(ll);
      }
      const sample = out.samples.medqa_usmle?.find((s) => s.position === b.position);
      // float32 forward (shared-context KV cache vs full forward) against float64 log-softmax: 1e-3 absolute.
      for (const [i, r] of (sample?.resps ?? []).entries()) expect(r[0]).toBeCloseTo(lls[i] as number, 3);
      const arg = (xs: number[]) => xs.indexOf(Math.max(...xs));
      const norm = lls.map((x, i) => x / pyLen(b.doc.options[i] as string));
      expect(sample?.acc).toBe(arg(lls) === b.gold ? 1 : 0);
      expect(sample?.acc_norm).toBe(arg(norm) === b.gold ? 1 : 0);
    }
  });

  it(`0-shot MedQA (${FULL ? "all 1,273" : `first ${LIMIT}`} questions) with a progress bar; interrupted + resumed is identical; 2 shards merged equal one run; no tensor leak`, async () => {
    const lines: string[] = [];
    const stream = { write: (s: string) => lines.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
    const base = {
      tasks: ["medqa_usmle"],
      limit: LIMIT,
      batchSize: 1,
      // The results record the run's date and duration: a fixed clock makes runs comparable.
      now: () => 1_700_000_000_000,
    } as const;
    const before = tf.memory().numTensors;
    const one = await evaluateShared({
      ...base,
      model: scorer(),
      progress: createBarReporter({ stream, plain: true, intervalMs: 0 }),
    });
    expect(tf.memory().numTensors).toBe(before);
    const n = LIMIT ?? 1273;
    expect(lines.at(-1)).toMatch(new RegExp(`medqa_usmle +\\[#+\\] ${n}/${n} doc`));

    const cacheDir = join(tmp.dir, "cache");
    const ctrl = new AbortController();
    const inner = scorer();
    let calls = 0;
    const interrupting = {
      name: inner.name,
      maxLength: inner.maxLength,
      logLikelihood: async (...a: Parameters<typeof inner.logLikelihood>) => {
        const r = await inner.logLikelihood(...a);
        if (++calls === 5) ctrl.abort();
        return r;
      },
    };
    await expect(
      evaluateShared({ ...base, model: interrupting, cacheDir, signal: ctrl.signal }),
    ).rejects.toThrow(/interrupted/);
    const resumed = await evaluateShared({ ...base, model: scorer(), cacheDir });
    expect(resumed.results).toEqual(one.results);
    expect(resumed.samples).toEqual(one.samples);

    const s0 = await evaluateShared({ ...base, model: scorer(), shard: { index: 0, count: 2 } });
    const s1 = await evaluateShared({ ...base, model: scorer(), shard: { index: 1, count: 2 } });
    const merged = mergeShards([s0, s1]);
    expect(merged.results).toEqual(one.results);
    expect(merged.samples).toEqual(one.samples);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("context sharing gives the harness's numbers (naive full forwards) within float32 rounding", async () => {
    const a = await evaluateShared({ model: scorer(), tasks: ["pubmedqa"], limit: 3 });
    const b = await evaluateShared({ model: scorer({ shareContext: false }), tasks: ["pubmedqa"], limit: 3 });
    for (const [i, s] of (a.samples.pubmedqa ?? []).entries()) {
      for (const [j, r] of s.resps.entries())
        expect(r[0]).toBeCloseTo(b.samples.pubmedqa?.[i]?.resps[j]?.[0] as number, 3);
    }
  });
});
