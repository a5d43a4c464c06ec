/**
 * Chat templates from tokenizer_config.json, rendered with @huggingface/jinja. The templates are the official
 * ones of meta-llama/Llama-2-7b-chat-hf and mistralai/Mistral-7B-Instruct-v0.1 (tokenizer_config.json
 * `chat_template`); the expected strings are the outputs transformers' apply_chat_template documents for them
 * (the transformers chat-templating guide and the @huggingface/jinja test suite).
 */
import { isHippoError } from "@hippocrates/core";
import { afterAll, describe, expect, it } from "vitest";
import { loadTokenizer } from "../src/index.js";
import { LLAMA2, MISTRAL } from "./helpers.js";
import { makeFolder, removeFolder } from "./tmpdir.js";

const LLAMA2_CHAT_TEMPLATE =
  "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

const MISTRAL_INSTRUCT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

const CHAT = [
  { role: "user" as const, content: "Hello, how are you?" },
  { role: "assistant" as const, content: "I'm doing great. How can I help you today?" },
  { role: "user" as const, content: "I'd like to show off how chat templating works!" },
];
const SYSTEM = {
  role: "system" as const,
  content: "You are a friendly chatbot who always responds in the style of a pirate",
};

const folders: string[] = [];
function folderWith(from: string, config: object): string {
  const dir = makeFolder(from, { "tokenizer_config.json": config });
  folders.push(dir);
  return dir;
}
afterAll(() => folders.forEach(removeFolder));

describe("chat templates", () => {
  it("Llama-2-chat: the documented output, system prompt folded into the first user turn", async () => {
    const t = await loadTokenizer(
      folderWith(LLAMA2, { tokenizer_class: "LlamaTokenizer", chat_template: LLAMA2_CHAT_TEMPLATE }),
    );
    expect(t.chatTemplate).toBe(LLAMA2_CHAT_TEMPLATE);
    expect(t.applyChatTemplate([SYSTEM, ...CHAT])).toBe(
      "<s>[INST] <<SYS>>\nYou are a friendly chatbot who always responds in the style of a pirate\n<</SYS>>\n\nHello, how are you? [/INST] I'm doing great. How can I help you today? </s><s>[INST] I'd like to show off how chat templating works! [/INST]",
    );
    // The rendered string tokenizes with its special tokens recognised (and no second BOS from the template).
    const ids = await t.encode(t.applyChatTemplate(CHAT), { addSpecialTokens: false });
    expect(ids.filter((id) => id === 1)).toHaveLength(2);
    expect(ids.filter((id) => id === 2)).toHaveLength(1);
  });

  it("Mistral-7B-Instruct-v0.1: the output shown in the transformers chat-templating guide", async () => {
    const t = await loadTokenizer(
      folderWith(MISTRAL, { chat_template: MISTRAL_INSTRUCT_TEMPLATE, bos_token: "<s>", eos_token: "</s>" }),
    );
    expect(t.applyChatTemplate(CHAT)).toBe(
      "<s>[INST] Hello, how are you? [/INST]I'm doing great. How can I help you today?</s> [INST] I'd like to show off how chat templating works! [/INST]",
    );
  });

  it("raise_exception in the template becomes a HippoError with the template's message", async () => {
    const t = await loadTokenizer(folderWith(MISTRAL, { chat_template: MISTRAL_INSTRUCT_TEMPLATE }));
    const call = () => t.applyChatTemplate([CHAT[0]!, CHAT[0]!]);
    expect(call).toThrow(/Conversation roles must alternate/);
    try {
      call();
    } catch (e) {
      expect(isHippoError(e, "INVALID_ARGUMENT")).toBe(true);
    }
  });

  it("add_generation_prompt, extra variables, and named templates (list form)", async () => {
    const chatml =
      "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const t = await loadTokenizer(
      folderWith(LLAMA2, {
        chat_template: [
          { name: "default", template: chatml },
          { name: "greet", template: "{{ greeting }}, {{ messages[0].content }}{{ eos_token }}" },
        ],
        eos_token: "</s>",
      }),
    );
    expect(t.chatTemplate).toBe(chatml);
    expect(t.applyChatTemplate([CHAT[0]!], { addGenerationPrompt: true })).toBe(
      "<|im_start|>user\nHello, how are you?<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(t.applyChatTemplate([CHAT[0]!])).toBe("<|im_start|>user\nHello, how are you?<|im_end|>\n");
    expect(t.applyChatTemplate([CHAT[0]!], { templateName: "greet", extra: { greeting: "Ahoy" } })).toBe(
      "Ahoy, Hello, how are you?</s>",
    );
    expect(() => t.applyChatTemplate(CHAT, { templateName: "nope" })).toThrow(
      /no chat template named "nope"/,
    );
  });

  it("the template can come from options or from chat_template.jinja", async () => {
    const fromOption = await loadTokenizer(LLAMA2, { chatTemplate: MISTRAL_INSTRUCT_TEMPLATE });
    expect(fromOption.applyChatTemplate([CHAT[0]!])).toBe("<s>[INST] Hello, how are you? [/INST]");
    const dir = makeFolder(MISTRAL, { "chat_template.jinja": "{{ bos_token }}{{ messages[0]['content'] }}" });
    folders.push(dir);
    expect((await loadTokenizer(dir)).applyChatTemplate([CHAT[0]!])).toBe("Hello, how are you?"); // no bos_token named: undefined renders as ""
  });

  it("a folder without a template gives a clear error (the shared Llama-2 and Mistral folders have none)", async () => {
    for (const dir of [LLAMA2, MISTRAL]) {
      const t = await loadTokenizer(dir);
      expect(t.chatTemplate).toBeNull();
      expect(() => t.applyChatTemplate(CHAT)).toThrow(/no chat template/);
    }
  });

  it("bad messages and broken templates are HippoErrors", async () => {
    const t = await loadTokenizer(LLAMA2, { chatTemplate: MISTRAL_INSTRUCT_TEMPLATE });
    for (const bad of [null, [{ role: "user" }], [{ role: 1, content: "x" }]]) {
      expect(() => t.applyChatTemplate(bad as never)).toThrow(/messages/);
    }
    const broken = await loadTokenizer(LLAMA2, { chatTemplate: "{% for m in messages %}" });
    expect(() => broken.applyChatTemplate(CHAT)).toThrow(/chat template/);
  });
});
