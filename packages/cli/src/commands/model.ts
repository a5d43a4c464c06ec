/** `hippo init`, `hippo merge`, `hippo generate`: small commands around the model package. */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { HippoError, isHippoError, parseJsonSafe } from "@hippocrates/core";
import { type Command, Option } from "commander";
import { loadServeModel } from "./serve.js";
import {
  type BackendChoice,
  copyTokenizerFiles,
  ensureBackend,
  hubProgress,
  loadArtifactModel,
  modelArtifact,
  parseFloatArg,
  parseIntArg,
  resolveSource,
  resolveTokenizer,
} from "./shared.js";

const backendOption = () =>
  new Option("--backend <name>", "compute backend")
    .choices(["auto", "tensorflow-gpu", "tensorflow", "wasm", "cpu"])
    .default("auto");

export function registerModelCommands(program: Command): void {
  program
    .command("init")
    .description(
      "create a model with seeded random weights from an HF config.json (as transformers' from_config) and save it",
    )
    .requiredOption("--config <file>", "config.json (llama or mistral)")
    .requiredOption("--output <dir>", "HF model folder to write")
    .option("--tokenizer <dir|id>", "copy this tokenizer's files (a folder or a Hub id) into the folder")
    .option(
      "--vocab-size <n>",
      "override vocab_size (e.g. to match a tokenizer)",
      parseIntArg("--vocab-size"),
    )
    .option("--seed <n>", "seed of the weights", parseIntArg("--seed"), 0)
    .addOption(backendOption())
    .addHelpText(
      "after",
      "\nExample:\n  hippo init --config packages/cli/pipelines/miniature-model.json --output models/tiny\n",
    )
    .action(
      async (f: {
        config: string;
        output: string;
        tokenizer?: string;
        vocabSize?: number;
        seed: number;
        backend: BackendChoice;
      }) => {
        const file = resolve(f.config);
        const config = parseJsonSafe(await readFile(file, "utf8"), file) as Record<string, unknown>;
        const tokenizer =
          f.tokenizer === undefined
            ? undefined
            : await resolveSource(f.tokenizer, "tokenizer", {
                flag: "--tokenizer",
                progress: hubProgress(true),
              });
        if (f.vocabSize !== undefined) config.vocab_size = f.vocabSize;
        await ensureBackend({ backend: f.backend, threads: undefined, tokenizer: "" });
        const { createRandomModel, saveModel, parameterCount } = await import("@hippocrates/model");
        const model = createRandomModel(config, { seed: f.seed });
        try {
          await saveModel(model, resolve(f.output));
          if (tokenizer) await copyTokenizerFiles(tokenizer.path, resolve(f.output));
          process.stdout.write(
            `wrote ${resolve(f.output)} (${parameterCount(model.config).toLocaleString("en")} parameters)\n`,
          );
        } finally {
          model.dispose();
        }
      },
    );

  program
    .command("merge")
    .description("merge a PEFT LoRA adapter into its base model and save a full HF model folder")
    .requiredOption("--model <dir|id>", "base HF model: a folder or a Hub id (org/name[@rev])")
    .option("--revision <rev>", "Hub revision of the base model: branch, tag or commit (default main)")
    .requiredOption(
      "--adapter <dir|id>",
      "PEFT adapter (adapter_config.json + adapter_model.safetensors): a folder or a Hub id",
    )
    .requiredOption("--output <dir>", "merged HF model folder")
    .addOption(
      new Option("--dtype <t>", "dtype of the saved weights").choices(["F32", "BF16", "F16"]).default("F32"),
    )
    .addOption(backendOption())
    .addHelpText(
      "after",
      "\nExamples:\n  hippo merge --model models/base --adapter out/sft --output models/sft-merged\n  hippo merge --model meta-llama/Llama-2-7b-hf --adapter org/llama2-medical-lora --output models/merged\n",
    )
    .action(
      async (f: {
        model: string;
        revision?: string;
        adapter: string;
        output: string;
        dtype: "F32" | "BF16" | "F16";
        backend: BackendChoice;
      }) => {
        const progress = hubProgress(true);
        const base = await resolveSource(f.model, "model", {
          flag: "--model",
          revision: f.revision,
          progress,
        });
        const adapter = await resolveSource(f.adapter, "adapter", { flag: "--adapter", progress });
        const tokenizer = await resolveTokenizer(
          undefined,
          { name: f.model, resolved: base },
          progress,
        ).catch((e: unknown) => {
          // A base whose repository has no tokenizer.json: the merged folder is written without one.
          if (isHippoError(e, "NOT_FOUND") && base.hub) return undefined;
          throw e;
        });
        await ensureBackend({ backend: f.backend, threads: undefined, tokenizer: "" });
        const { saveModel } = await import("@hippocrates/model");
        const model = await loadArtifactModel({
          kind: "peft-adapter",
          path: adapter.path,
          base: modelArtifact(base),
        });
        try {
          await saveModel(model, resolve(f.output), { dtype: f.dtype });
        } finally {
          model.dispose();
        }
        if (tokenizer) await copyTokenizerFiles(tokenizer.path, resolve(f.output));
        process.stdout.write(`wrote ${resolve(f.output)}\n`);
      },
    );

  program
    .command("generate")
    .description("generate text from a prompt (greedy by default), streaming tokens to stdout")
    .argument("<model>", "HF model: a folder or a Hub id (org/name[@rev])")
    .requiredOption("-p, --prompt <text>", "prompt text")
    .option("--revision <rev>", "Hub revision of the model: branch, tag or commit (default main)")
    .option("--adapter <dir|id>", "PEFT adapter (folder or Hub id) merged at load")
    .option("--tokenizer <dir|id>", "tokenizer folder or Hub id (default: the model's)")
    .option("--chat", "wrap the prompt in the tokenizer's chat template")
    .option("--max-tokens <n>", "tokens to generate", parseIntArg("--max-tokens"), 64)
    .option("--temperature <x>", "0 = greedy", parseFloatArg("--temperature"), 0)
    .option("--top-p <x>", "nucleus sampling", parseFloatArg("--top-p"))
    .option("--seed <n>", "sampling seed", parseIntArg("--seed"), 0)
    .addOption(backendOption())
    .addHelpText(
      "after",
      "\nExample:\n  hippo generate runs/miniature/run/07-merge/model -p 'Question: Which drug is used to treat keoritis?\\nAnswer:' --max-tokens 4\n",
    )
    .action(
      async (
        nameOrPath: string,
        f: {
          prompt: string;
          revision?: string;
          adapter?: string;
          tokenizer?: string;
          chat?: boolean;
          maxTokens: number;
          temperature: number;
          topP?: number;
          seed: number;
          backend: BackendChoice;
        },
      ) => {
        const { model, dispose } = await loadServeModel(nameOrPath, {
          adapter: f.adapter,
          tokenizer: f.tokenizer,
          revision: f.revision,
          backend: f.backend,
        });
        try {
          const tok = model.tokenizer;
          if (f.chat && !tok.applyChatTemplate)
            throw new HippoError("UNSUPPORTED", "the tokenizer has no chat template", { key: "--chat" });
          const text =
            f.chat && tok.applyChatTemplate
              ? tok.applyChatTemplate([{ role: "user", content: f.prompt }], { addGenerationPrompt: true })
              : f.prompt;
          const ids = await tok.encode(text, { addSpecialTokens: !f.chat });
          const [r] = await model.generator.generate([ids], {
            maxNewTokens: f.maxTokens,
            temperature: f.temperature,
            seed: f.seed,
            ...(f.topP !== undefined ? { topP: f.topP } : {}),
            ...(tok.eosTokenId !== null ? { stopTokenIds: [tok.eosTokenId] } : {}),
          });
          // Decode prompt + completion together (keeps SentencePiece spacing) and print the new part.
          const before = await tok.decode(ids, { skipSpecialTokens: true });
          const all = await tok.decode([...ids, ...(r?.tokens ?? [])], { skipSpecialTokens: true });
          process.stdout.write(`${all.slice(before.length)}\n`);
        } finally {
          dispose();
        }
      },
    );
}
