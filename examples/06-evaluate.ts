/**
 * 06 - Evaluate on MedQA-USMLE
 *
 * The evaluation of the paper, through the eval package: lm-evaluation-harness's protocol (the authors' v0.3
 * fork: seeded shuffle, `--limit`, no BOS, acc / acc_norm), on the real MedQA-USMLE test file, for the random
 * base model of example 04 and for base + the SFT adapter trained there. The results table puts our rows
 * beside the published ones. With random models and 8 questions the numbers are chance, of course: the point
 * is the machinery, which is the same for a 7B model.
 *
 *   pnpm exec tsx examples/04-lora-sft.ts && pnpm exec tsx examples/06-evaluate.ts
 */
import { existsSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend } from "@hippocrates/backend";
import type { ModelArtifact } from "@hippocrates/core";
import { type EvalOutput, evaluate, formatReport } from "@hippocrates/eval";
import { asScoringModel, loadArtifact } from "@hippocrates/model";
import { loadTokenizer } from "@hippocrates/tokenizer";

const DATA = new URL("../../shared/data/", import.meta.url);
const work = join(tmpdir(), "hippocrates-examples");
if (!existsSync(join(work, "sft", "adapter_config.json"))) {
  console.error(`no SFT adapter in ${work}/sft: run examples/04-lora-sft.ts first`);
  process.exit(1);
}

await initBackend();
const tokenizer = await loadTokenizer(fileURLToPath(new URL("tokenizers/llama2", DATA)));

// 1. The two models, as artifacts: the base folder, and the chain base -> SFT adapter (loaded and merged by
//    loadArtifact, as the pipeline does; a DPO adapter from example 05 would be one more link).
const base: ModelArtifact = { kind: "hf-model", path: join(work, "base") };
const sft: ModelArtifact = { kind: "peft-adapter", path: join(work, "sft"), base };

// 2. Evaluate each: medqa_usmle (1,273 questions, 4 options), the first 8 after the harness's seeded shuffle
//    (`--limit 8`), 0-shot, profile "v0.3". Every request is cached, so an interrupted run resumes.
const cacheDir = join(work, "eval-cache");
await rm(cacheDir, { recursive: true, force: true });
const runEval = async (artifact: ModelArtifact, name: string): Promise<EvalOutput> => {
  const lm = await loadArtifact(artifact);
  try {
    return await evaluate({
      model: asScoringModel(lm, { name }),
      tokenizer,
      tasks: ["medqa_usmle"],
      limit: 8,
      numFewshot: 0,
      profile: "v0.3",
      dataDir: fileURLToPath(DATA),
      cacheDir,
      writeOut: join(work, "eval", name),
    });
  } finally {
    lm.dispose();
  }
};
const t0 = Date.now();
const baseOut = await runEval(base, "random-base");
const sftOut = await runEval(sft, "random-base+sft");
console.log(`scored 2 x 8 questions in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

// 3. What a task's metrics look like (lm-evaluation-harness's results.json shape).
const m = sftOut.results.results.medqa_usmle ?? {};
const f = (k: string) => (typeof m[k] === "number" ? (m[k] as number).toFixed(3) : String(m[k]));
console.log(
  `medqa_usmle (+SFT): acc ${f("acc")} ± ${f("acc_stderr")}, acc_norm ${f("acc_norm")} ± ${f("acc_norm_stderr")}`,
);
console.log(`n-samples: ${JSON.stringify(sftOut.results["n-samples"].medqa_usmle)}`);
console.log(
  `config: profile=${sftOut.results.config.profile} bos_policy=${sftOut.results.config.bos_policy} limit=${sftOut.results.config.limit}`,
);

// 4. One scored document, as the --write-out dump stores it: the prompt, each option's [log-likelihood,
//    is-greedy], the gold answer and the prediction's correctness.
const s = sftOut.samples.medqa_usmle?.[0];
if (s) {
  console.log(`sample doc ${s.doc_id}: ...${JSON.stringify(s.context.slice(-80))}`);
  s.resps.forEach(([lp, greedy], i) => {
    console.log(
      `  ${i === s.gold ? "*" : " "} ${s.continuations[i]?.slice(0, 50)}: ${lp.toFixed(2)}${greedy ? " (greedy)" : ""}`,
    );
  });
  console.log(`  acc ${s.acc} acc_norm ${s.acc_norm}`);
}

// 5. A second run with the same cache asks the model nothing: the results come from the cache.
const t1 = Date.now();
const again = await runEval(base, "random-base");
console.log(
  `re-run from the cache: ${Date.now() - t1} ms, same acc: ${again.results.results.medqa_usmle?.acc === baseOut.results.results.medqa_usmle?.acc}`,
);

// 6. The report table: our rows beside the paper's (the other columns were not run here, hence "—").
console.log(
  formatReport(
    [
      { label: "random base", results: baseOut.results },
      { label: "random base +SFT", results: sftOut.results },
    ],
    { shots: 0 },
  ),
);
