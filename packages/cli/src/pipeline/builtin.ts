/**
 * TEMPORARY: the built-in eval stage as a `PipelineStage` over the CLI's adapter, until @hippocrates/eval
 * exports its own `evalStage()`. It is registered through the same registry as a user's stage.
 */
import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { HippoError, type PipelineStage, type StageCheckContext } from "@hippocrates/core";
import { z } from "zod";
import { runEvalStage } from "./adapters.js";

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

export const evalSettings = z.strictObject({
  tasks: z.array(z.string().min(1)).min(1),
  num_fewshot: nonNegInt.optional(),
  limit: positiveInt.optional(),
  profile: z.enum(["v0.3", "current"]).optional(),
  data_dir: z.string().min(1).optional(),
  batch_size: positiveInt.optional(),
  label: z.string().min(1).optional(),
  write_out: z.boolean().optional(),
});

export type EvalSettings = z.infer<typeof evalSettings>;

function checkFile(baseDir: string, key: string, p: string | undefined): void {
  if (p === undefined) return;
  const file = resolve(baseDir, p);
  if (!existsSync(file)) throw new HippoError("INVALID_CONFIG", `path does not exist: ${file}`, { key });
  if (!statSync(file).isFile())
    throw new HippoError("INVALID_CONFIG", `expected a file, got a folder: ${file}`, { key });
}

async function checkEval(c: EvalSettings, ctx: StageCheckContext): Promise<void> {
  const ev = await import("@hippocrates/eval");
  for (const [j, t] of c.tasks.entries()) {
    if (/[\\/]|\.json$/.test(t)) checkFile(ctx.baseDir, `tasks[${j}]`, t);
    else
      try {
        ev.defaultRegistry.resolve([t], c.profile ?? "v0.3");
      } catch (e) {
        throw new HippoError("INVALID_CONFIG", (e as HippoError).reason ?? String(e), { key: `tasks[${j}]` });
      }
  }
}

export function evalStage(): PipelineStage<EvalSettings> {
  return {
    kind: "eval",
    settings: evalSettings,
    check: checkEval,
    run: (input, ctx) => runEvalStage(input.model, input.config, ctx),
  };
}
