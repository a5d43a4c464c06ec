import { resolve } from "node:path";
import { createBarReporter, silentProgress } from "@hippocrates/core";
import { type Command, Option } from "commander";
import { resolvePipelineConfig } from "../config/load.js";
import { runTrainingStage } from "../pipeline/adapters.js";
import { type BackendChoice, parseFloatArg, parseIntArg } from "./shared.js";

interface TrainFlags {
  model: string;
  adapter?: string;
  tokenizer?: string;
  data: string;
  evalData?: string;
  output: string;
  epochs?: number;
  maxSteps?: number;
  lr?: number;
  batchSize?: number;
  gradAccum?: number;
  maxLength?: number;
  scheduler?: "cosine" | "constant" | "linear";
  warmupSteps?: number;
  loraR?: number;
  loraAlpha?: number;
  loraTargets?: string;
  full?: boolean;
  template?: string;
  beta?: number;
  saveEvery?: number;
  gradientCheckpointing?: boolean;
  seed: number;
  restart?: boolean;
  backend: BackendChoice;
  progress: boolean;
}

/** `hippo train {cpt,sft,dpo}`: one stage, the same code path and validation as a pipeline stage. */
export function registerTrain(program: Command): void {
  const train = program
    .command("train")
    .description("train one stage: continued pre-training, instruction tuning or DPO");
  for (const kind of ["cpt", "sft", "dpo"] as const) {
    const cmd = train
      .command(kind)
      .description(
        {
          cpt: "continued pre-training on JSONL documents ({text}), packed into blocks (preset: LoRA r8/alpha16 on the MLP, lr 1e-4)",
          sft: "instruction tuning on JSONL records ({messages} or {instruction,input,output}), loss on responses only (preset: LoRA r32 on all linear layers, 3 epochs)",
          dpo: "DPO on JSONL pairs ({prompt,chosen,rejected}), reference = the input model (preset: beta 0.1, lr 1e-5, new LoRA on q/v)",
        }[kind],
      )
      .requiredOption("--model <dir>", "input HF model folder")
      .option("--adapter <dir>", "PEFT adapter of the input model (merged before training)")
      .option("--tokenizer <dir>", "tokenizer folder (default: the model folder)")
      .requiredOption("--data <file>", "training data (JSONL)")
      .option("--eval-data <file>", "held-out data of the same kind (eval loss)")
      .requiredOption(
        "--output <dir>",
        "output folder (adapter or model, trainer_state.json, metrics.jsonl, checkpoints)",
      )
      .option("--epochs <n>", "epochs", parseFloatArg("--epochs"))
      .option("--max-steps <n>", "stop after this many optimizer steps", parseIntArg("--max-steps"))
      .option("--lr <x>", "peak learning rate", parseFloatArg("--lr"))
      .option("--batch-size <n>", "micro-batch size", parseIntArg("--batch-size"))
      .option("--grad-accum <n>", "gradient accumulation steps", parseIntArg("--grad-accum"))
      .option("--max-length <n>", "sequence length (CPT block size)", parseIntArg("--max-length"))
      .addOption(
        new Option("--scheduler <kind>", "learning-rate schedule").choices(["cosine", "constant", "linear"]),
      )
      .option("--warmup-steps <n>", "linear warmup steps", parseIntArg("--warmup-steps"))
      .option("--lora-r <n>", "LoRA rank", parseIntArg("--lora-r"))
      .option("--lora-alpha <x>", "LoRA alpha", parseFloatArg("--lora-alpha"))
      .option("--lora-targets <list>", "LoRA target modules, comma-separated (q_proj,v_proj,...)")
      .option("--full", "train every weight instead of a LoRA adapter")
      .option("--save-every <n>", "checkpoint every N steps", parseIntArg("--save-every"))
      .option(
        "--gradient-checkpointing",
        "recompute each layer in the backward pass: far less memory (fits the 4 GiB wasm heap), about the same speed",
      )
      .option("--seed <n>", "seed", parseIntArg("--seed"), 42)
      .option(
        "--restart",
        "drop the checkpoints in --output and start at step 0 (an interrupted run otherwise resumes; with every checkpoint corrupt it stops)",
      )
      .addOption(
        new Option("--backend <name>", "compute backend")
          .choices(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"])
          .default("auto"),
      )
      .option("--no-progress", "no progress bar");
    if (kind !== "cpt")
      cmd.option(
        "--template <t>",
        'prompt template: "default", "chatml", "tokenizer" or a string with {prompt}',
      );
    if (kind === "dpo") cmd.option("--beta <x>", "DPO beta", parseFloatArg("--beta"));
    cmd.addHelpText(
      "after",
      `\nAn interrupted run resumes from its last checkpoint when run again with the same --output (a corrupt newest\ncheckpoint is skipped with a notice; when every one is corrupt the run stops: --restart starts over).\n\nExample:\n  hippo train ${kind} --model models/base --data data/${kind}.jsonl --output out/${kind} --max-steps 100\n`,
    );
    cmd.action(async (f: TrainFlags) => {
      const lora =
        f.full === true
          ? false
          : f.loraR !== undefined
            ? {
                r: f.loraR,
                alpha: f.loraAlpha ?? f.loraR * 2,
                target_modules: (
                  f.loraTargets ?? (kind === "dpo" ? "q_proj,v_proj" : "gate_proj,up_proj,down_proj")
                ).split(","),
              }
            : undefined;
      const stage: Record<string, unknown> = {
        kind,
        data: f.data,
        ...(f.evalData ? { eval_data: f.evalData } : {}),
        ...(f.epochs !== undefined ? { epochs: f.epochs } : {}),
        ...(f.maxSteps !== undefined ? { max_steps: f.maxSteps } : {}),
        ...(f.lr !== undefined ? { lr: f.lr } : {}),
        ...(f.batchSize !== undefined ? { batch_size: f.batchSize } : {}),
        ...(f.gradAccum !== undefined ? { grad_accum: f.gradAccum } : {}),
        ...(f.maxLength !== undefined ? { max_length: f.maxLength } : {}),
        ...(f.scheduler ? { scheduler: f.scheduler } : {}),
        ...(f.warmupSteps !== undefined ? { warmup_steps: f.warmupSteps } : {}),
        ...(lora !== undefined ? { lora } : {}),
        ...(f.saveEvery !== undefined ? { save_every: f.saveEvery } : {}),
        ...(f.gradientCheckpointing ? { gradient_checkpointing: true } : {}),
        ...(f.template !== undefined ? { template: f.template } : {}),
        ...(f.beta !== undefined ? { beta: f.beta } : {}),
      };
      // The same validation as a pipeline.yaml with one stage (paths relative to the working directory).
      const config = resolvePipelineConfig(
        { model: f.model, ...(f.tokenizer ? { tokenizer: f.tokenizer } : {}), stages: [stage] },
        resolve("hippo-train.yaml"),
      );
      const resolved = config.stages[0];
      if (!resolved) return;
      const model = f.adapter
        ? ({
            kind: "peft-adapter",
            path: resolve(f.adapter),
            base: { kind: "hf-model", path: config.model },
          } as const)
        : ({ kind: "hf-model", path: config.model } as const);
      const out = await runTrainingStage(
        kind,
        { model, config: resolved.config as unknown as Record<string, unknown> },
        {
          outputDir: resolve(f.output),
          runDir: resolve(f.output),
          baseDir: process.cwd(),
          tokenizer: config.tokenizer,
          seed: f.seed,
          progress: f.progress ? createBarReporter() : silentProgress,
          signal: new AbortController().signal,
          log: (m) => process.stderr.write(`${m}\n`),
        },
        { tokenizer: config.tokenizer, backend: f.backend, threads: undefined, restart: f.restart === true },
      );
      process.stdout.write(
        `${JSON.stringify({ model: out.model, metrics: out.metrics, files: out.files }, null, 2)}\n`,
      );
    });
  }
}
