/**
 * 07 - A custom pipeline stage
 *
 * `hippo run pipeline.yaml` runs stages in the order the config lists them; any stage can be a module of your
 * own. Here `examples/stages/model-card.ts` (read it: ~40 lines) is a `PipelineStage` that writes a model card
 * and passes the model on; the pipeline runs it, then the built-in `eval` stage on four MedQA questions. We
 * validate the config (`--dry-run`), run it, read the run's manifest, and run it again: finished stages are
 * skipped.
 *
 *   pnpm exec tsx examples/07-custom-stage.ts
 */
import { spawnSync } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { initBackend } from "@hippocrates/backend";
import { createRandomModel, saveModel } from "@hippocrates/model";

const DATA = fileURLToPath(new URL("../../shared/data/", import.meta.url));
const STAGE_MODULE = fileURLToPath(new URL("./stages/model-card.ts", import.meta.url));
// The `hippo` command of @hippocrates/cli (pnpm links it into node_modules/.bin of every package using it).
const HIPPO = fileURLToPath(new URL("./node_modules/.bin/hippo", import.meta.url));

const work = join(tmpdir(), "hippocrates-example-07");
await rm(work, { recursive: true, force: true });
await mkdir(work, { recursive: true });

// 1. A base model for the run: a small random Llama with the Llama-2 vocabulary, as an HF folder.
await initBackend();
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
//    `config:` block is handed to it as `input.config`.
const yaml = `name: custom-stage-demo
model: ./base
tokenizer: ${JSON.stringify(join(DATA, "tokenizers/llama2"))}
output_dir: ./run
seed: 1
stages:
  - kind: model-card
    module: ${JSON.stringify(STAGE_MODULE)}
    config:
      title: Random Llama (examples/07)
  - kind: eval
    tasks: [medqa_usmle]
    limit: 4
    data_dir: ${JSON.stringify(DATA)}
`;
const configFile = join(work, "pipeline.yaml");
await writeFile(configFile, yaml);
console.log(`--- ${configFile}\n${yaml}---`);

const hippo = (...args: string[]) => {
  const r = spawnSync(HIPPO, args, { encoding: "utf8", cwd: work });
  process.stdout.write(r.stderr); // progress log
  process.stdout.write(r.stdout); // result
  if (r.status !== 0) throw new Error(`hippo ${args.join(" ")} exited with ${r.status}`);
};

// 3. Validate and print the plan; nothing is written.
hippo("run", configFile, "--dry-run");

// 4. Run it.
hippo("run", configFile, "--no-progress");

// 5. The run folder: manifest.json records each stage's settings fingerprint, input and output artifacts,
//    metrics, files and timing; our stage's folder holds its model card.
const manifest = JSON.parse(await readFile(join(work, "run", "manifest.json"), "utf8")) as {
  status: string;
  stages: {
    id: string;
    kind: string;
    status: string;
    seconds?: number;
    outputDir: string;
    output?: { metrics: Record<string, number> };
  }[];
};
console.log(`manifest: status ${manifest.status}`);
for (const s of manifest.stages) {
  console.log(
    `  ${s.id} (${s.kind}): ${s.status} in ${s.seconds?.toFixed(1)} s, metrics ${JSON.stringify(s.output?.metrics)}`,
  );
}
const cardStage = manifest.stages.find((s) => s.kind === "model-card");
if (cardStage) console.log(await readFile(join(cardStage.outputDir, "MODEL_CARD.md"), "utf8"));

// 6. Run again: every stage is recorded done with the same fingerprint, so nothing runs.
hippo("run", configFile, "--no-progress");

await rm(work, { recursive: true, force: true });
