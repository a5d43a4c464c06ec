/**
 * The `hippo` command. Each subcommand lives in src/commands/ and registers itself here; commander gives
 * every one of them `--help`.
 */
import { Command } from "commander";
import { registerData } from "./commands/data.js";
import { registerEval } from "./commands/eval.js";
import { registerMiniature } from "./commands/miniature.js";
import { registerModelCommands } from "./commands/model.js";
import { registerReport } from "./commands/report.js";
import { registerRun } from "./commands/run.js";
import { registerServe } from "./commands/serve.js";
import { registerTrain } from "./commands/train.js";

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
  registerMiniature(program);
  registerServe(program);
  registerTrain(program);
  registerEval(program);
  registerModelCommands(program);
  registerData(program);
  return program;
}
