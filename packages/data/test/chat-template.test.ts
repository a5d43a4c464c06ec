import { join } from "node:path";
import type { InstructionRecord } from "@hippocrates/core";
import { loadTokenizer } from "@hippocrates/tokenizer";
import { describe, expect, it } from "vitest";
import { tokenizeInstruction } from "../src/index.js";
import { CONVERSATION, labelledRuns, SHARED } from "./helpers.js";

// The chat template published with meta-llama/Llama-2-7b-chat-hf (tokenizer_config.json), with the
// `raise_exception` role check.
const LLAMA2_CHAT_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

describe("SFT with the tokenizer's own chat template", () => {
  it("tokenizes the rendered chat once and labels exactly the assistant spans (Llama-2 chat template)", async () => {
    const tokenizer = await loadTokenizer(join(SHARED, "tokenizers/llama2"), {
      chatTemplate: LLAMA2_CHAT_TEMPLATE,
    });
    const record: InstructionRecord = { id: "c", source: "t", messages: CONVERSATION };
    const ex = await tokenizeInstruction(record, tokenizer, { template: { kind: "tokenizer" } });
    if (!ex) throw new Error("no example");
    const text = tokenizer.applyChatTemplate(record.messages);
    expect(text).toBe(
      "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST] Hello. </s><s>[INST] Fever? [/INST] Rest. </s>",
    );
    // The ids are exactly the tokenization of the whole rendered text (what the model sees at inference).
    expect(ex.inputIds).toEqual(await tokenizer.encode(text, { addSpecialTokens: false }));
    expect(ex.inputIds.filter((id) => id === 1)).toHaveLength(2);
    // Labelled runs, decoded: the two answers with their EOS; everything else masked.
    const decoded = await Promise.all(labelledRuns(ex).map((r) => tokenizer.decode(r)));
    expect(decoded.map((d) => d.trim())).toEqual(["Hello. </s>", "Rest. </s>"]);
  });
});
