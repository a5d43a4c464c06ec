/**
 * TRL's dataset formats, with TRL's own example records: huggingface/trl docs/source/dataset_formats.md at
 * commit 0087e4f5 ("Dataset formats and types": language modeling, prompt-completion, preference with explicit
 * and implicit prompt, standard and conversational), through the Llama-2 tokenizer; `extract_prompt`'s
 * docstring example from trl/data_utils.py at commit 00cc012a.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type ChatMessage, IGNORE_INDEX, writeJsonlAtomic } from "@hippocrates/core";
import { loadTokenizer } from "@hippocrates/tokenizer";
import { parquetWriteFile } from "hyparquet-writer";
import { describe, expect, it } from "vitest";
import {
  CHATML_TEMPLATE,
  checkTrainingFile,
  cptBlocks,
  dpoPairs,
  extractPrompt,
  parseTrainingRecord,
  type SftRecord,
  sftExamples,
  templateFromSetting,
  tokenizePreference,
  tokenizeSftRecord,
} from "../src/index.js";
import { CONVERSATION, labelledAndMasked, llama2, SHARED, useTempDir } from "./helpers.js";

// TRL's examples (dataset_formats.md), verbatim.
const TRL = {
  lm: { text: "The sky is blue." },
  lmChat: {
    messages: [
      { role: "user", content: "What color is the sky?" },
      { role: "assistant", content: "It is blue." },
    ],
  },
  promptCompletion: { prompt: "The sky is", completion: " blue." },
  promptCompletionChat: {
    prompt: [{ role: "user", content: "What color is the sky?" }],
    completion: [{ role: "assistant", content: "It is blue." }],
  },
  preference: { prompt: "The sky is", chosen: " blue.", rejected: " green." },
  preferenceImplicit: { chosen: "The sky is blue.", rejected: "The sky is green." },
  preferenceChat: {
    prompt: [{ role: "user", content: "What color is the sky?" }],
    chosen: [{ role: "assistant", content: "It is blue." }],
    rejected: [{ role: "assistant", content: "It is green." }],
  },
  preferenceChatImplicit: {
    chosen: [
      { role: "user", content: "What color is the sky?" },
      { role: "assistant", content: "It is blue." },
    ],
    rejected: [
      { role: "user", content: "What color is the sky?" },
      { role: "assistant", content: "It is green." },
    ],
  },
} as const;

const raw = (value: unknown, line = 1) => ({ value, loc: { file: "data.jsonl", line } });
const sft = (value: unknown) => parseTrainingRecord("sft", raw(value));
const pair = (value: unknown) => parseTrainingRecord("dpo", raw(value));

const none = templateFromSetting("none");
const enc = async (s: string, special = false) => (await llama2()).encode(s, { addSpecialTokens: special });
/** An SFT record through the Llama-2 tokenizer (default template): its labelled and masked text. */
const sftSplit = async (value: unknown) =>
  labelledAndMasked(await tokenizeSftRecord(sft(value), await llama2()));

describe("TRL's language-modelling and prompt-completion records (SFT)", () => {
  it("standard language modelling: every token of text + EOS is labelled", async () => {
    const ex = await tokenizeSftRecord(sft(TRL.lm), await llama2());
    expect(ex?.inputIds).toEqual([...(await enc(TRL.lm.text, true)), 2]);
    expect(ex?.inputIds[0]).toBe(1);
    expect(ex?.labels).toEqual([IGNORE_INDEX, ...(await enc(TRL.lm.text)), 2]);
  });

  it("conversational language modelling: the assistant turn and EOS labelled, the user turn masked", async () => {
    expect(await sftSplit(TRL.lmChat)).toEqual({
      labelled: "It is blue.</s>",
      masked: "Human: What color is the sky?\nAssistant: ",
    });
  });

  it("standard prompt-completion, template none: TRL's tokenization, the completion + EOS labelled", async () => {
    const ex = await tokenizeSftRecord(sft(TRL.promptCompletion), await llama2(), { template: none });
    // TRL's SFTTrainer: ids = tokenizer(prompt + completion) + EOS; the first len(tokenizer(prompt)) masked.
    const full = await enc("The sky is blue.", true);
    const prompt = await enc("The sky is", true);
    expect(ex?.inputIds).toEqual([...full, 2]);
    expect(ex?.labels).toEqual([...prompt.map(() => IGNORE_INDEX), ...full.slice(prompt.length), 2]);
    expect(await labelledAndMasked(ex)).toEqual({ labelled: "blue.</s>", masked: "The sky is" });
  });

  it("standard prompt-completion under a template: the prompt is the user turn, the completion the answer", async () => {
    expect(await sftSplit(TRL.promptCompletion)).toEqual({
      labelled: " blue.</s>",
      masked: "Human: The sky is\nAssistant: ",
    });
  });

  it("conversational prompt-completion: the completion labelled (TRL's completion_only_loss), the prompt masked", async () => {
    const ex = await tokenizeSftRecord(sft(TRL.promptCompletionChat), await llama2());
    expect(await labelledAndMasked(ex)).toEqual({
      labelled: "It is blue.</s>",
      masked: "Human: What color is the sky?\nAssistant: ",
    });
    // The same conversation as a `messages` record gives the same tokens: only the source of the mask differs.
    const asMessages = await tokenizeSftRecord(sft(TRL.lmChat), await llama2());
    expect(ex).toEqual(asMessages);
  });

  it("an assistant turn inside a conversational prompt is context: masked, only the completion is labelled", async () => {
    const record = sft({ prompt: CONVERSATION.slice(1, 4), completion: CONVERSATION.slice(4) });
    const ex = await tokenizeSftRecord(record, await llama2(), { template: CHATML_TEMPLATE });
    const { labelled } = await labelledAndMasked(ex);
    expect(labelled).toBe("Rest.<|im_end|></s>");
    // As a messages record both turns would be labelled: the prompt's assistant turn is what the mask changed.
    const both = await tokenizeSftRecord({ messages: CONVERSATION.slice(1) }, await llama2(), {
      template: CHATML_TEMPLATE,
    });
    expect(both?.inputIds).toEqual(ex?.inputIds);
    expect(both?.labels.filter((l) => l !== IGNORE_INDEX)).toEqual([
      ...(await enc("Hello.<|im_end|>")),
      2,
      ...(await enc("Rest.<|im_end|>")),
      2,
    ]);
  });

  it("Alpaca records are a user turn (instruction + newline + input) and the output", async () => {
    const record = sft({ instruction: "Name the color.", input: "The sky", output: "Blue." });
    expect(record).toEqual({
      messages: [
        { role: "user", content: "Name the color.\nThe sky" },
        { role: "assistant", content: "Blue." },
      ],
    });
    expect(await labelledAndMasked(await tokenizeSftRecord(record, await llama2()))).toEqual({
      labelled: "Blue.</s>",
      masked: "Human: Name the color.\nThe sky\nAssistant: ",
    });
  });
});

describe("TRL's preference records (DPO)", () => {
  it("standard explicit prompt, template none: prompt with BOS, each response + EOS, tokenized on its own", async () => {
    const p = await tokenizePreference(pair(TRL.preference), await llama2(), { template: none });
    expect(p).toEqual({
      promptIds: await enc("The sky is", true),
      chosenIds: [...(await enc(" blue.")), 2],
      rejectedIds: [...(await enc(" green.")), 2],
    });
  });

  it("standard implicit prompt: TRL's extract_prompt gives the explicit record (the space goes to the responses)", async () => {
    expect(pair(TRL.preferenceImplicit)).toEqual(TRL.preference);
    const tok = await llama2();
    expect(await tokenizePreference(pair(TRL.preferenceImplicit), tok, { template: none })).toEqual(
      await tokenizePreference(pair(TRL.preference), tok, { template: none }),
    );
  });

  it("conversational explicit prompt: the prompt rendered as in SFT (BOS first), responses + EOS", async () => {
    const p = await tokenizePreference(pair(TRL.preferenceChat), await llama2());
    expect(p).toEqual({
      promptIds: [1, ...(await enc("Human: What color is the sky?\nAssistant: "))],
      chosenIds: [...(await enc("It is blue.")), 2],
      rejectedIds: [...(await enc("It is green.")), 2],
    });
    // Prompt + chosen is exactly the SFT example of the same conversation (what the SFT stage trained on).
    const asSft = await tokenizeSftRecord(sft(TRL.lmChat), await llama2());
    expect([...p.promptIds, ...p.chosenIds]).toEqual(asSft?.inputIds);
  });

  it("conversational implicit prompt: the shared messages are the prompt (extract_prompt's docstring example)", async () => {
    expect(pair(TRL.preferenceChatImplicit)).toEqual(TRL.preferenceChat);
    const { chosen, rejected } = TRL.preferenceChatImplicit;
    expect(extractPrompt<ChatMessage[]>([...chosen], [...rejected])).toEqual(TRL.preferenceChat);
  });

  it("string pairs under the default template are tokenized as the CLI's DPO stage did (prompt as the user turn)", async () => {
    const tok = await llama2();
    const record = { prompt: "What is hypertension?", chosen: "High blood pressure.", rejected: "A fever." };
    // The earlier packages/cli/src/pipeline/adapters.ts dpoPairs: BOS + template.user(prompt); response + EOS.
    expect(await tokenizePreference(pair(record), tok)).toEqual({
      promptIds: [1, ...(await enc("Human: What is hypertension?\nAssistant: "))],
      chosenIds: [...(await enc("High blood pressure.")), 2],
      rejectedIds: [...(await enc("A fever.")), 2],
    });
  });

  it("with the tokenizer's chat template, responses are what the template adds after the generation prompt", async () => {
    const tok = await loadTokenizer(join(SHARED, "tokenizers/llama2"), {
      chatTemplate:
        "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% else %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}",
    });
    const p = await tokenizePreference(pair(TRL.preferenceChat), tok, { template: { kind: "tokenizer" } });
    expect(p.promptIds).toEqual(await enc("<s>[INST] What color is the sky? [/INST]"));
    expect(p.chosenIds).toEqual(await enc(" It is blue. </s>"));
    expect(p.rejectedIds).toEqual(await enc(" It is green. </s>"));
    expect(p.chosenIds.at(-1)).toBe(2);
    expect(p.chosenIds.filter((t) => t === 2)).toHaveLength(1);
  });

  it("TRL's extract_prompt on strings: common prefix by character, a space before the difference moves on", () => {
    expect(extractPrompt("Paris is nice", "Paris is big")).toEqual({
      prompt: "Paris is",
      chosen: " nice",
      rejected: " big",
    });
    expect(extractPrompt("ab", "ac")).toEqual({ prompt: "a", chosen: "b", rejected: "c" });
  });
});

describe("records that fit no format", () => {
  it("names file, line and the keys found", () => {
    expect(() => parseTrainingRecord("sft", raw({ question: "q", answer: "a" }, 7))).toThrow(
      /data\.jsonl:7: the record fits no sft data format \(expected .*"prompt", "completion".*got keys "question", "answer"\)/,
    );
    expect(() => parseTrainingRecord("sft", raw({ prompt: "The sky is" }, 2))).toThrow(
      /data\.jsonl:2: .*got keys "prompt"/,
    );
    expect(() => parseTrainingRecord("cpt", raw({ messages: TRL.lmChat.messages }, 3))).toThrow(
      /data\.jsonl:3: the record fits no cpt data format \(expected \{"text"\}/,
    );
    expect(() => parseTrainingRecord("dpo", raw({ prompt: "x", chosen: "y" }))).toThrow(
      /fits no dpo data format/,
    );
  });

  it("mixed strings and message lists, bad roles and empty responses are errors naming the key", () => {
    expect(() => sft({ prompt: "The sky is", completion: [{ role: "assistant", content: "blue" }] })).toThrow(
      /both be strings or both message lists/,
    );
    expect(() => sft({ messages: [{ role: "tool", content: "x" }] })).toThrow(/key "messages\.0\.role"/);
    expect(() => pair({ prompt: "p", chosen: "", rejected: "r" })).toThrow(/key "chosen"/);
    expect(() => pair({ chosen: "same", rejected: "same" })).toThrow(/identical/);
    expect(() => pair({ chosen: "a", rejected: "b" })).toThrow(/share no prompt/);
    expect(() =>
      sft({
        prompt: [{ role: "assistant", content: "x" }],
        completion: [{ role: "assistant", content: "y" }],
      }),
    ).toThrow(/must end with a user turn/);
  });

  it('template "none" refuses conversational records instead of guessing a chat format', async () => {
    await expect(
      tokenizeSftRecord(sft(TRL.lmChat) as SftRecord, await llama2(), { template: none }),
    ).rejects.toThrow(/conversational records need a chat template/);
  });
});

describe("training files in any record format", () => {
  const t = useTempDir();

  it("JSONL, JSON, CSV and Parquet files of the same records give the same examples", async () => {
    const tok = await llama2();
    const records = [TRL.promptCompletion, { prompt: "The sun is", completion: " in the sky." }];
    const jsonl = join(t.dir, "pc.jsonl");
    await writeJsonlAtomic(jsonl, records);
    const json = join(t.dir, "pc.json");
    await writeFile(json, JSON.stringify(records));
    const csv = join(t.dir, "pc.csv");
    await writeFile(
      csv,
      `prompt,completion\n${records.map((r) => `"${r.prompt}","${r.completion}"`).join("\n")}\n`,
    );
    const parquet = join(t.dir, "pc.parquet");
    parquetWriteFile({
      filename: parquet,
      columnData: [
        { name: "prompt", data: records.map((r) => r.prompt), type: "STRING" },
        { name: "completion", data: records.map((r) => r.completion), type: "STRING" },
      ],
    });
    const expected = await sftExamples(jsonl, tok, { template: none });
    expect(expected).toHaveLength(2);
    for (const f of [json, csv, parquet])
      expect(await sftExamples(f, tok, { template: none })).toEqual(expected);
  });

  it("cptBlocks packs text records; dpoPairs reads implicit and explicit pairs alike", async () => {
    const tok = await llama2();
    const cpt = join(t.dir, "cpt.jsonl");
    await writeJsonlAtomic(cpt, [TRL.lm, { text: "Water is wet." }]);
    const blocks = await cptBlocks(cpt, tok, { blockSize: 8 });
    const tokens = [...(await enc(TRL.lm.text)), 2, ...(await enc("Water is wet.")), 2];
    expect(blocks.flatMap((b) => b.inputIds).slice(0, tokens.length)).toEqual(tokens);
    const dpo = join(t.dir, "dpo.jsonl");
    await writeJsonlAtomic(dpo, [TRL.preference, TRL.preferenceImplicit]);
    const pairs = await dpoPairs(dpo, tok, { template: none });
    expect(pairs[1]).toEqual(pairs[0]);
  });

  it("checkTrainingFile: missing file, a folder, an unknown extension and a bad record at its line", async () => {
    await expect(checkTrainingFile(join(t.dir, "nope.jsonl"), "sft")).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    const folder = join(t.dir, "folder.jsonl");
    await mkdir(folder);
    await expect(checkTrainingFile(folder, "sft")).rejects.toThrow(/not a regular file/);
    const txt = join(t.dir, "data.txt");
    await writeFile(txt, "x");
    await expect(checkTrainingFile(txt, "sft")).rejects.toThrow(/cannot tell the record format/);
    const bad = join(t.dir, "bad.jsonl");
    await writeJsonlAtomic(bad, [TRL.lmChat, TRL.promptCompletion, { question: "q", answer: "a" }]);
    await expect(checkTrainingFile(bad, "sft")).rejects.toThrow(
      /bad\.jsonl:3: the record fits no sft data format/,
    );
    const empty = join(t.dir, "empty.jsonl");
    await writeFile(empty, "");
    await expect(checkTrainingFile(empty, "sft")).rejects.toThrow(/holds no records/);
    expect(await checkTrainingFile(bad, "sft", { records: 2 })).toBe(2);
  });
});
