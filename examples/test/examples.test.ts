/**
 * Runs every examples/NN-*.ts script the way the README says (tsx, from the repo root) and checks the exit
 * code and a few lines of its output, so the examples cannot silently rot as the packages change.
 *
 * The scripts run one after another in a fresh TMPDIR: 05 and 06 continue from what 04 leaves in
 * $TMPDIR/hippocrates-examples, as they do when a reader runs them in order.
 */
import { execFile } from "node:child_process";
import { readdirSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const EXAMPLES = fileURLToPath(new URL("..", import.meta.url));
const ROOT = join(EXAMPLES, "..");
const TSX = join(ROOT, "node_modules", ".bin", "tsx");

/** Lines (regular expressions) each script's output must contain. Every script needs an entry. */
const EXPECTED: Record<string, RegExp[]> = {
  "01-tokenize.ts": [
    /^vocab size: 32000 {2}bos=1 eos=2$/m,
    /^encode \(with BOS\): +\[1, 319, /m,
    /^decode round trip: "A 23-year-old woman presents with fever and a stiff neck\."$/m,
    /^ {2}continuation tokens: \[3295, 5358, .*\] = "Disclose the error to the patient and put it in the operative report"$/m,
    /^<s>\[INST\] <<SYS>>$/m,
  ],
  "02-load-and-generate.ts": [
    /^greedy prompt_a: \[286, 174, .*\] == HF transformers$/m,
    /^greedy prompt_b: .* == HF transformers$/m,
    /^greedy prompt_c: .* == HF transformers$/m,
    /^stream:( \d+){16}$/m,
    /^same seed reproduces: true$/m,
    /finish=stop$/m,
  ],
  "03-score-medqa.ts": [
    /^gold: \(B\) Tell the attending that he cannot fail to disclose this mistake$/m,
    /^shared context: \d+ tokens in \d+ forwards; naive: \d+ tokens in \d+ forwards; max \|difference\| /m,
    /^\(A\) logprob +-\d+\.\d{3} +tokens 15 /m,
    /^acc picks \([A-D]\)/m,
    /^acc_norm picks \([A-D]\)/m,
  ],
  "04-lora-sft.ts": [
    /^6 examples; the first has \d+ tokens, \d+ of them trained on$/m,
    /^trained 20 steps: /m,
    /^files: adapter_config\.json, adapter_model\.safetensors, /m,
    /^adapter_config: peft_type=LORA r=8 lora_alpha=16 /m,
    /^mean answer log-likelihood: base -\d+\.\d+ -> base \+ adapter -\d+\.\d+$/m,
  ],
  "05-dpo.ts": [
    /^step \| loss \| rewards\/chosen \| rewards\/rejected \| rewards\/accuracies \| rewards\/margins/m,
    // Step 1: policy = reference, so the sigmoid loss is ln 2 and both rewards are 0.
    /^ {3}1 \| 0\.6931 \| -?0\.0000 \| -?0\.0000 \| /m,
    /^final loss 0\.[0-5]\d* after 8 steps$/m,
    /^output artifact: \{"kind":"peft-adapter","path":".*dpo","base":\{"kind":"peft-adapter","path":".*sft"/m,
    /^files: adapter_config\.json, adapter_model\.safetensors, .*reference_logps\.json/m,
  ],
  "06-evaluate.ts": [
    /^n-samples: \{"original":1273,"effective":8,"scored":8\}$/m,
    /^config: profile=v0\.3 bos_policy=none limit=8$/m,
    /^re-run from the cache: \d+ ms, same acc: true$/m,
    /^\| random base \+SFT \(ours\) \| — \| \d+\.\d \| — /m,
    /^\| Hippo-μ 7B \(published\) \| 49\.7 \| 59\.2 /m,
  ],
  "07-custom-stage.ts": [
    /^ {2}1\. model-card \[model-card, module .*model-card\.ts\] to run$/m,
    /^a config with a typo: .*typo\.yaml, key "stages\[1\]\.limt": .*unknown key "limt"; did you mean "limit"\?$/m,
    /^ran: model-card, eval; skipped: nothing$/m,
    /^ {2}model-card \(model-card\): done in .* metrics \{"parameters":4186944\}$/m,
    /^ {2}eval \(eval\): done in .* metrics \{"medqa_usmle\/acc":/m,
    /^- parameters: 4,186,944$/m,
    /^second run: ran nothing; skipped: model-card, eval$/m,
  ],
  "08-serve-and-query.ts": [
    /^server ready at http:\/\/127\.0\.0\.1:\d+\/v1$/m,
    /^models: tiny-chat$/m,
    /^completion: ".*" \(finish_reason length, 8 tokens\)$/m,
    /^echo\+logprobs: \d+ prompt tokens scored; last three: /m,
    /^chat: ".*" \(prompt \d+ tokens\)$/m,
    /^streamed 8 chunks: /m,
    /^too many tokens -> HTTP 400: /m,
    /^server stopped$/m,
  ],
};

const scripts = readdirSync(EXAMPLES)
  .filter((f) => /^\d\d-.*\.ts$/.test(f))
  .sort();

function run(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      TSX,
      [join("examples", script)],
      { cwd: ROOT, env, maxBuffer: 64 << 20 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

describe("examples", () => {
  let tmp = "";
  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "hippo-examples-test-"));
  });
  afterAll(async () => {
    await rm(tmp, { recursive: true, force: true });
  });

  it("has expectations for every numbered example", () => {
    expect(scripts.length).toBeGreaterThan(0);
    for (const s of scripts) expect(Object.keys(EXPECTED), s).toContain(s);
  });

  for (const script of scripts) {
    it(`${script} runs and prints what it promises`, async () => {
      const { code, out } = await run(script, { ...process.env, TMPDIR: tmp, FORCE_COLOR: "0" });
      expect(code, out).toBe(0);
      for (const re of EXPECTED[script] ?? []) expect(out, `${script} output`).toMatch(re);
    });
  }
});
