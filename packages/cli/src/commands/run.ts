import { createBarReporter } from "@hippocrates/core";
import { type Command, Option } from "commander";
import { loadPipelineConfig } from "../config/load.js";
import { describePlan, runPipeline } from "../pipeline/runner.js";
import { describeBackendLazy } from "./shared.js";

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run a pipeline (cpt, sft, dpo, merge, eval stages, or your own) from a YAML config")
    .argument("<pipeline.yaml>", "pipeline config (see packages/cli/README.md, 'pipeline.yaml reference')")
    .option(
      "-o, --output <dir>",
      "run folder (default: output_dir of the config, else runs/<name> beside it)",
    )
    .option("--dry-run", "validate the config and print the plan; write nothing")
    .addOption(new Option("--no-progress", "no progress bars"))
    .addHelpText(
      "after",
      "\nRe-running the same command skips stages the manifest records as done and resumes an interrupted one\nfrom its checkpoint.\n\nExample:\n  hippo run packages/cli/pipelines/miniature.yaml --dry-run\n",
    )
    .action(async (file: string, opts: { output?: string; dryRun?: boolean; progress: boolean }) => {
      const config = await loadPipelineConfig(file, opts.output ? { outputDir: opts.output } : {});
      if (opts.dryRun) {
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
