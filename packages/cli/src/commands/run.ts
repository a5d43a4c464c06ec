import { createBarReporter } from "@hippocrates/core";
import { type Command, Option } from "commander";
import { loadPipelineConfig } from "../config/load.js";
import { checkPipeline } from "../pipeline/checks.js";
import { describePlan, runPipeline } from "../pipeline/runner.js";
import { describeBackendLazy, hubProgress } from "./shared.js";

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run a pipeline (cpt, sft, dpo, merge, eval stages, or your own) from a YAML config")
    .argument("<pipeline.yaml>", "pipeline config (see packages/cli/README.md, 'pipeline.yaml reference')")
    .option(
      "-o, --output <dir>",
      "run folder (default: output_dir of the config, else runs/<name> beside it)",
    )
    .option(
      "--dry-run",
      "validate the config, run every pre-flight check (files, models, tokenizers, tasks) and print the plan; write nothing",
    )
    .addOption(new Option("--no-progress", "no progress bars"))
    .addHelpText(
      "after",
      "\nStages run in file order, each on its input (`from:`, default the previous stage), so one file can hold\nseveral branches. Re-running the same command reuses finished stages, resumes an interrupted one from its\ncheckpoint, and re-runs a changed stage and the stages that take its model.\n\n`model:` and `tokenizer:` are folders or Hugging Face Hub ids (`org/name`, `revision:`); the manifest records the\ncommit each resolved to.\n\nExample:\n  hippo run packages/cli/pipelines/miniature.yaml --dry-run\n",
    )
    .action(async (file: string, opts: { output?: string; dryRun?: boolean; progress: boolean }) => {
      // The checks run once: here for --dry-run, else at the start of the run (before anything is written).
      const config = await loadPipelineConfig(file, {
        check: false,
        ...(opts.output ? { outputDir: opts.output } : {}),
      });
      if (opts.dryRun) {
        await checkPipeline(config, undefined, { progress: hubProgress(opts.progress) });
        process.stdout.write(`${await describePlan(config)}\n`);
        return;
      }
      const controller = new AbortController();
      const onSig = () => controller.abort();
      process.once("SIGINT", onSig);
      try {
        const result = await runPipeline(config, {
          ...(opts.progress ? { progress: createBarReporter() } : {}),
          signal: controller.signal,
          log: (m) => process.stderr.write(`${m}\n`),
          backend: describeBackendLazy(config.backend, config.threads),
        });
        process.stdout.write(
          `run finished: ${result.runDir}/manifest.json (ran ${result.ran.join(", ") || "nothing"}; skipped ${result.skipped.join(", ") || "nothing"})\n`,
        );
      } finally {
        process.off("SIGINT", onSig);
      }
    });
}
