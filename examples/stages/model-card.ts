/**
 * A user's pipeline stage (used by examples/07-custom-stage.ts): it writes a model card for the model it
 * receives and passes the model on unchanged. A module whose default export is a `PipelineStage` runs a
 * pipeline entry with `module: ./path/to/it.ts`; under `stage_modules:` its stages are registered under
 * their kinds (see docs/swap-a-stage.md).
 */
import { join } from "node:path";
import { type ModelArtifact, type PipelineStage, writeFileAtomic } from "@hippocrates/core";
import { parameterCount, readModelConfig } from "@hippocrates/model";
import { z } from "zod";

/** The stage's own settings: the keys of its entry in pipeline.yaml besides kind, name, from, module, seed. */
const settings = z.strictObject({ title: z.string().optional() });

/** The HF folder at the bottom of an adapter chain, and the adapters above it (innermost first). */
function chainOf(artifact: ModelArtifact): { base: string; adapters: string[] } {
  if (artifact.kind === "hf-model") return { base: artifact.path, adapters: [] };
  const below = chainOf(artifact.base);
  return { base: below.base, adapters: [...below.adapters, artifact.path] };
}

const stage: PipelineStage<z.infer<typeof settings>> = {
  kind: "model-card",
  settings,
  async run(input, context) {
    const { base, adapters } = chainOf(input.model);
    // Only config.json is read: a stage that does not change the model need not load its weights.
    const config = await readModelConfig(join(base, "config.json"));
    const parameters = parameterCount(config);
    const card = [
      `# ${input.config.title ?? "Model card"}`,
      "",
      `- architecture: ${config.model_type}, ${config.num_hidden_layers} layers, hidden ${config.hidden_size}, vocabulary ${config.vocab_size}`,
      `- parameters: ${parameters.toLocaleString("en-US")}`,
      `- base folder: ${base}`,
      `- adapters: ${adapters.length ? adapters.join(" -> ") : "none"}`,
      `- written by run ${context.runDir} with seed ${context.seed}`,
      "",
    ].join("\n");
    // The stage owns context.outputDir; atomic writes leave no half-written file if the process dies.
    await writeFileAtomic(join(context.outputDir, "MODEL_CARD.md"), card);
    context.log(`model card: ${parameters} parameters`);
    return { model: input.model, metrics: { parameters }, files: { card: "MODEL_CARD.md" } };
  },
};

export default stage;
