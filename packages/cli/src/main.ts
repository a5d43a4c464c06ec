/** Run the `hippo` program on argv: errors print as one line (HippoError) and become the exit code. */

import { isHippoError } from "@hippocrates/core";
import { CommanderError } from "commander";
import { createProgram } from "./cli.js";

export async function main(argv: string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    if (isHippoError(e)) {
      process.stderr.write(`hippo: ${e.message}\n`);
      return e.code === "INVALID_CONFIG" || e.code === "INVALID_ARGUMENT" ? 2 : 1;
    }
    process.stderr.write(`hippo: ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}
