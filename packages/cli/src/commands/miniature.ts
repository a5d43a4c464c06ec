import { join, resolve } from "node:path";
import { createBarReporter, writeFileAtomic } from "@hippocrates/core";
import { type Command, Option } from "commander";
import { loadPipelineConfig } from "../config/load.js";
import { prepareMiniature } from "../miniature/prepare.js";
import { runPipeline } from "../pipeline/runner.js";
import { collectReport } from "../report/collect.js";
import { renderHtmlReport } from "../report/html.js";
import { formatReportTable } from "../report/table.js";
import { type BackendChoice, describeBackendLazy, parseIntArg } from "./shared.js";

export function registerMiniature(program: Command): void {
  program
    .command("miniature")
    .description(
      "Hippo in miniature: a fictional medical knowledge base through base -> CPT -> SFT -> DPO and base -> SFT, evaluated at each stage, offline, in one to two minutes",
    )
    .option("--out <dir>", "folder for the data, tokenizer, base model and run", "runs/miniature")
    .option("--seed <n>", "seed of the knowledge base and the base model", parseIntArg("--seed"), 1234)
    .option("--diseases <n>", "invented diseases in the knowledge base", parseIntArg("--diseases"), 40)
    .option("--pipeline <file>", "pipeline YAML to run instead of packages/cli/pipelines/miniature.yaml")
    .addOption(
      new Option("--backend <name>", "compute backend")
        .choices(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"])
        .default("auto"),
    )
    .option("--prepare-only", "write data, tokenizer, base model and pipeline.yaml; do not run")
    .option("--no-progress", "no progress bars")
    .addHelpText(
      "after",
      "\nRe-running the same command skips finished stages (see `hippo run`).\n\nExamples:\n  hippo miniature\n  hippo miniature --out /tmp/mini && hippo report /tmp/mini/run\n",
    )
    .action(
      async (opts: {
        out: string;
        seed: number;
        diseases: number;
        pipeline?: string;
        backend: BackendChoice;
        prepareOnly?: boolean;
        progress: boolean;
      }) => {
        const t0 = performance.now();
        const out = resolve(opts.out);
        const log = (m: string) => process.stderr.write(`${m}\n`);
        const prep = await prepareMiniature(out, {
          seed: opts.seed,
          diseases: opts.diseases,
          backend: opts.backend,
          log,
          ...(opts.pipeline ? { pipeline: resolve(opts.pipeline) } : {}),
        });
        if (opts.prepareOnly) {
          process.stdout.write(`prepared ${out}; run it with: hippo run ${prep.pipeline}\n`);
          return;
        }
        // The run checks the config at its start (before anything is written).
        const config = await loadPipelineConfig(prep.pipeline, { check: false });
        if (opts.backend !== "auto") config.backend = opts.backend;
        const controller = new AbortController();
        const onSig = () => controller.abort();
        process.once("SIGINT", onSig);
        try {
          await runPipeline(config, {
            ...(opts.progress ? { progress: createBarReporter() } : {}),
            signal: controller.signal,
            log,
            backend: describeBackendLazy(config.backend, config.threads),
          });
        } finally {
          process.off("SIGINT", onSig);
        }
        const data = await collectReport(config.outputDir);
        const html = join(config.outputDir, "report.html");
        await writeFileAtomic(html, renderHtmlReport(data));
        process.stdout.write(
          `\n${formatReportTable(data)}\n\nHTML report: ${html}\nTotal time: ${((performance.now() - t0) / 1000).toFixed(0)} s\n`,
        );
      },
    );
}
