/**
 * The `hippo` command. Each subcommand lives in src/commands/ and registers itself here; commander gives
 * every one of them `--help`.
 */
import { Command } from "commander";
import { registerReport } from "./commands/report.js";
import { registerRun } from "./commands/run.js";

export const VERSION = "0.0.0";

export function createProgram(): Command {
  const program = new Command();
  program
    .name("hippo")
    .description(
      "Hippocrates.ts: continued pre-training, instruction tuning, DPO and evaluation of medical LLMs",
    )
    .version(VERSION)
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride();
  registerRun(program);
  registerReport(program);
  return program;
}
