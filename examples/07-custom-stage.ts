/**
 * 07 - A custom pipeline stage
 *
 * A pipeline config lists stages; any stage can be a module of your own. Here `examples/stages/model-card.ts`
 * (read it: ~40 lines) is a `PipelineStage` with a zod schema for its settings; it writes a model card and
 * passes the model on. The pipeline runs it, then the built-in `eval` stage on four MedQA questions. We
 * validate the config (the stage's own schema checks its keys) and print the plan, run it with the runner of
 * @hippocrates/cli (what `hippo run pipeline.yaml` does), read the run's manifest, and run it again: finished
 * stages are reused.
 *
 *   pnpm exec tsx examples/07-custom-stage.ts
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describeBackend, initBackend } from "@hippocrates/backend";
import { describePlan, loadPipelineConfig, runPipeline } from "@hippocrates/cli";
import { createRandomModel, saveModel } from "@hippocrates/model";

const DATA = fileURLToPath(new URL("../../shared/data/", import.meta.url));
const STAGE_MODULE = fileURLToPath(new URL("./stages/model-card.ts", import.meta.url));

const work = join(tmpdir(), "hippocrates-example-07");
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });

// 1. A base model for the run: a small random Llama with the Llama-2 vocabulary, as an HF folder.
const backend = await initBackend();
const base = createRandomModel(
  {
    model_type: "llama",
    vocab_size: 32000,
    hidden_size: 64,
    intermediate_size: 172,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    hidden_act: "silu",
    max_position_embeddings: 512,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
  },
  { seed: 0 },
);
await saveModel(base, join(work, "base"));
base.dispose();

// 2. The pipeline config. Paths are relative to the config file. A stage with `module:` is the user's; its
//    other keys (here `title`) are its settings: validated by its schema, handed to it as `input.config`.
const yaml = `name: custom-stage-demo
model: ./base
tokenizer: ${JSON.stringify(join(DATA, "tokenizers/llama2"))}
output_dir: ./run
seed: 1
stages:
  - kind: model-card
    module: ${JSON.stringify(STAGE_MODULE)}
    title: Random Llama (examples/07)
  - kind: eval
    tasks: [medqa_usmle]
    limit: 4
    data_dir: ${JSON.stringify(DATA)}
`;
const configFile = join(work, "pipeline.yaml");
await writeFile(configFile, yaml);
console.log(`--- ${configFile}\n${yaml}---`);

// 3. Load and validate the config (`hippo run pipeline.yaml --dry-run`): a wrong key, type or path fails here,
//    with every problem named, before anything is written. Then print the plan.
const config = await loadPipelineConfig(configFile);
console.log(await describePlan(config));

// A typo is caught the same way, with the key and what was expected (here `limt` for `limit`).
const typo = join(work, "typo.yaml");
await writeFile(typo, yaml.replace("limit: 4", "limt: 4"));
try {
  await loadPipelineConfig(typo);
} catch (e) {
  console.log(`a config with a typo: ${(e as Error).message}`);
}

// 4. Run it. `log` receives the runner's progress lines; the manifest records the backend it is told about.
const log = (line: string) => console.log(`  log: ${line}`);
const first = await runPipeline(config, { log, backend: async () => describeBackend(backend) });
console.log(`ran: ${first.ran.join(", ")}; skipped: ${first.skipped.join(", ") || "nothing"}`);

// 5. The run folder: manifest.json records each stage's settings fingerprint, input and output artifacts,
//    metrics, files and timing; our stage's folder holds its model card.
const manifest = first.manifest; // the same object is in run/manifest.json
console.log(`manifest: status ${manifest.status}`);
for (const s of manifest.stages) {
  console.log(
    `  ${s.id} (${s.kind}): ${s.status} in ${s.seconds?.toFixed(1)} s, metrics ${JSON.stringify(s.output?.metrics)}`,
  );
}
const cardStage = manifest.stages.find((s) => s.kind === "model-card");
if (cardStage) console.log(await readFile(join(cardStage.outputDir, "MODEL_CARD.md"), "utf8"));

// 6. Run again: every stage is recorded done with the same fingerprint, so nothing runs.
const second = await runPipeline(await loadPipelineConfig(configFile), { log });
console.log(`second run: ran ${second.ran.join(", ") || "nothing"}; skipped: ${second.skipped.join(", ")}`);

await rm(work, { recursive: true, force: true });
