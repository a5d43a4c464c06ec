import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createBarReporter, type ProgressReporter } from "@hippocrates/core";
import { describe, expect, it } from "vitest";
import {
  buildContexts,
  defaultRegistry,
  type EvaluateOptions,
  mergeShards,
  pyIsoDateId,
  readOutput,
  truncateRequest,
} from "../src/index.js";
import { createDetModel, scoreRequest } from "./detModel.js";
import { DATA_DIR, evaluateShared, llama2, useTempDir } from "./helpers.js";

const t = useTempDir("hippo-eval-");

describe("acc and acc_norm by hand equal the package's", () => {
  it("medqa_usmle, 6 documents, with the Llama-2 tokenizer and a deterministic model", async () => {
    const tok = await llama2();
    const out = await evaluateShared({ model: createDetModel(), tasks: ["medqa_usmle"], limit: 6 });
    const task = defaultRegistry.get("medqa_usmle", "v0.3");
    const built = buildContexts(task, await task.load(DATA_DIR), {
      profile: "v0.3",
      numFewshot: 0,
      limit: 6,
    });
    const accs: number[] = [];
    const norms: number[] = [];
    for (const b of built) {
      // By hand: the harness's split (the context ends in "Answer:", no trailing space), no BOS.
      const ctx = await tok.encode(b.context, { addSpecialTokens: false });
      const lls: number[] = [];
      for (const opt of b.doc.options) {
        const whole = await tok.encode(`${b.context} ${opt}`, { addSpecialTokens: false });
        lls.push(scoreRequest({ context: ctx, continuation: whole.slice(ctx.length) }).logprob);
      }
      let best = 0;
      let bestNorm = 0;
      for (let i = 1; i < lls.length; i++) {
        if ((lls[i] as number) > (lls[best] as number)) best = i;
        if (
          (lls[i] as number) / (b.doc.options[i] as string).length >
          (lls[bestNorm] as number) / (b.doc.options[bestNorm] as string).length
        )
          bestNorm = i;
      }
      accs.push(best === b.gold ? 1 : 0);
      norms.push(bestNorm === b.gold ? 1 : 0);
      const sample = out.samples.medqa_usmle?.find((s) => s.position === b.position);
      expect(sample?.resps.map((r) => r[0])).toEqual(lls);
    }
    const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const se = (xs: number[]) =>
      Math.sqrt(xs.reduce((a, x) => a + (x - meanOf(xs)) ** 2, 0) / (xs.length - 1)) / Math.sqrt(xs.length);
    const r = out.results.results.medqa_usmle;
    expect(out.samples.medqa_usmle?.map((s) => s.acc)).toEqual(accs);
    expect(out.samples.medqa_usmle?.map((s) => s.acc_norm)).toEqual(norms);
    expect(r?.["acc,none"]).toBeCloseTo(meanOf(accs), 12);
    expect(r?.["acc_norm,none"]).toBeCloseTo(meanOf(norms), 12);
    expect(r?.["acc_stderr,none"]).toBeCloseTo(se(accs), 12);
    expect(out.results.config.bos_policy).toBe("none");
    expect(out.results["n-samples"].medqa_usmle).toEqual({ original: 1273, effective: 6 });
    expect(out.samples.medqa_usmle).toHaveLength(6);
  });

  it("BOS policy 'bos' puts the BOS id first and is recorded", async () => {
    const out = await evaluateShared({
      model: createDetModel(),
      tasks: ["pubmedqa"],
      limit: 2,
      bos: "bos",
    });
    expect(out.results.config.bos_policy).toBe("bos");
    const noBos = await evaluateShared({
      model: createDetModel(),
      tasks: ["pubmedqa"],
      limit: 2,
    });
    expect(out.samples.pubmedqa?.[0]?.context_tokens[0]).toBe(
      (noBos.samples.pubmedqa?.[0]?.context_tokens[0] ?? 0) + 1,
    );
    expect(out.samples.pubmedqa?.[0]?.resps).not.toEqual(noBos.samples.pubmedqa?.[0]?.resps);
  });

  it("left truncation keeps the last max_length + 1 tokens", () => {
    expect(truncateRequest([1, 2, 3, 4, 5, 6], [7, 8], 5)).toEqual({
      context: [3, 4, 5, 6],
      continuation: [7, 8],
      truncated: true,
    });
    expect(truncateRequest([1, 2, 3, 4], [7, 8], 5)).toEqual({
      context: [1, 2, 3, 4],
      continuation: [7, 8],
      truncated: false,
    });
    expect(() => truncateRequest([1], [1, 2, 3], 2)).toThrow(/longer than the model/);
  });

  it("the multimedqa group is weighted by size", async () => {
    const out = await evaluateShared({
      model: createDetModel(),
      tasks: ["multimedqa"],
      profile: "current",
      limit: 4,
    });
    const g = out.results.groups?.multimedqa;
    const members = out.results.group_subtasks.multimedqa ?? [];
    expect(members).toHaveLength(9);
    const accs = members.flatMap((t) => out.samples[t]?.map((s) => s.acc) ?? []);
    expect(g?.["acc,none"]).toBeCloseTo(accs.reduce((a, b) => a + b, 0) / accs.length, 12);
    expect(out.results.config.bos_policy).toBe("bos");
    expect(out.samples.medqa_4options?.[0]?.continuations).toEqual([" A", " B", " C", " D"]);
  });
});

describe("runs that scale", () => {
  it("a full 0-shot MedQA run with a progress bar; interrupted and resumed gives identical results", async () => {
    const lines: string[] = [];
    const stream = { write: (s: string) => lines.push(s), isTTY: false } as unknown as NodeJS.WriteStream;
    const progress: ProgressReporter = createBarReporter({ stream, plain: true, intervalMs: 0 });
    // The results record the run's date and duration: a fixed clock makes two runs comparable.
    const now = () => 1_700_000_000_000;
    const full = await evaluateShared({
      model: createDetModel(),
      tasks: ["medqa_usmle"],
      progress,
      batchSize: 32,
      now,
    });
    expect(full.samples.medqa_usmle).toHaveLength(1273);
    expect(lines.at(-1)).toMatch(/medqa_usmle +\[#+\] 1273\/1273 doc/);

    const cacheDir = join(t.dir, "cache");
    const ctrl = new AbortController();
    const m1 = createDetModel();
    const aborting = {
      ...m1,
      name: m1.name,
      maxLength: m1.maxLength,
      logLikelihood: async (r: Parameters<typeof m1.logLikelihood>[0]) => {
        const res = await m1.logLikelihood(r);
        if (m1.calls === 10 * 32) ctrl.abort(new Error("stop"));
        return res;
      },
    };
    // One document per model call, one call at a time: the interruption lands after exactly 320 documents.
    await expect(
      evaluateShared({
        model: aborting,
        tasks: ["medqa_usmle"],
        cacheDir,
        signal: ctrl.signal,
        batchSize: 1,
      }),
    ).rejects.toThrow(/interrupted/);
    expect(m1.requests).toBe(10 * 32 * 4);
    const m2 = createDetModel();
    const resumed = await evaluateShared({
      model: m2,
      tasks: ["medqa_usmle"],
      cacheDir,
      batchSize: 32,
      now,
    });
    expect(m2.requests).toBe(1273 * 4 - 10 * 32 * 4);
    expect(resumed.results).toEqual(full.results);
    expect(resumed.samples).toEqual(full.samples);
    // A third run is served from the cache alone.
    const m3 = createDetModel();
    await evaluateShared({
      model: m3,
      tasks: ["medqa_usmle"],
      cacheDir,
      limit: 50,
    });
    expect(m3.requests).toBe(0);
  });

  it("two shards merged equal one run (5-shot pubmedqa, v0.3 stream)", async () => {
    // A fixed clock: the results record the run's date and duration, which differ between runs.
    const opts = {
      tasks: ["pubmedqa", "medmcqa"],
      limit: 30,
      logSamples: true,
      now: () => 1_700_000_000_000,
    } as const;
    /** One run (shard undefined) or shard `index` of 2, each with a fresh deterministic model. */
    const run = (index: number | undefined, more: Partial<EvaluateOptions>) =>
      evaluateShared({
        ...opts,
        model: createDetModel(),
        shard: index === undefined ? undefined : { index, count: 2 },
        ...more,
      });
    const one = await run(undefined, { numFewshot: 0 });
    const s0 = await run(0, { numFewshot: 0 });
    const s1 = await run(1, { numFewshot: 0 });
    expect(s0.samples.pubmedqa).toHaveLength(15);
    const merged = mergeShards([s1, s0]);
    expect(merged.results).toEqual(one.results);
    expect(merged.samples).toEqual(one.samples);
    const fiveShot = { tasks: ["pubmedqa"], numFewshot: 5 };
    const five = await run(undefined, fiveShot);
    const f0 = await run(0, fiveShot);
    const f1 = await run(1, fiveShot);
    expect(mergeShards([f0, f1]).samples).toEqual(five.samples);
    expect(() => mergeShards([f0])).toThrow(/exactly once/);
    // Across processes: each shard writes its folder, the merge reads them back.
    await run(0, { ...fiveShot, outputPath: join(t.dir, "shard0") });
    await run(1, { ...fiveShot, outputPath: join(t.dir, "shard1") });
    const fromDisk = mergeShards([
      await readOutput(join(t.dir, "shard0")),
      await readOutput(join(t.dir, "shard1")),
    ]);
    expect(fromDisk.results).toEqual(five.results);
    expect(fromDisk.samples).toEqual(five.samples);
    expect(() => mergeShards([f0, s1])).toThrow(/different configurations/);
  });

  it("--output_path with --log_samples writes DIR/<model>/results_<date>.json and every request's context and continuations", async () => {
    const dir = join(t.dir, "out");
    const out = await evaluateShared({
      model: createDetModel(),
      tasks: ["pubmedqa"],
      limit: 3,
      outputPath: dir,
      logSamples: true,
      now: () => Date.UTC(2024, 4, 1, 12, 34, 56, 789),
    });
    const date = pyIsoDateId(Date.UTC(2024, 4, 1, 12, 34, 56, 789));
    expect(out.files?.results).toBe(join(dir, "det-test-model", `results_${date}.json`));
    const results = JSON.parse(await readFile(out.files?.results as string, "utf8"));
    expect(Object.keys(results)).toEqual(
      expect.arrayContaining(["results", "versions", "n-samples", "configs", "config"]),
    );
    expect(Object.keys(results.results.pubmedqa)).toEqual([
      "alias",
      "acc,none",
      "acc_stderr,none",
      "name",
      "sample_len",
    ]);
    const rows = (await readFile(join(dir, "det-test-model", `samples_pubmedqa_${date}.jsonl`), "utf8"))
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(rows).toHaveLength(3);
    expect(Object.values(rows[0].arguments).map((a) => (a as { arg_1: string }).arg_1)).toEqual([
      " yes",
      " no",
      " maybe",
    ]);
    expect(rows[0].arguments.gen_args_0.arg_0.startsWith("Abstract: ")).toBe(true);
    expect(rows[0].resps).toHaveLength(3);
  });
});

describe("bad input", () => {
  it("unknown task name, bad shard, bad profile", async () => {
    const base = { model: createDetModel() };
    await expect(evaluateShared({ ...base, tasks: ["medqa_usmel"] })).rejects.toThrow(
      /unknown task "medqa_usmel" for profile v0\.3/,
    );
    await expect(
      evaluateShared({ ...base, tasks: ["medqa_usmle"], shard: { index: 2, count: 2 } }),
    ).rejects.toThrow(/shard/);
    await expect(
      evaluateShared({ ...base, tasks: ["medqa_usmle"], profile: "v9" as "v0.3" }),
    ).rejects.toThrow(/unknown profile/);
    await expect(
      evaluateShared({ ...base, tasks: ["medqa_usmle"], dataDir: join(t.dir, "nope") }),
    ).rejects.toThrow(/cannot read file/);
  });
});
