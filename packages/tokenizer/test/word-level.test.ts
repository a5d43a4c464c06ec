/** Word-level tokenizer folders: what loadTokenizer reads back from them, and a vocabulary that cannot work. */
import { isHippoError } from "@hippocrates/core";
import { afterAll, describe, expect, it } from "vitest";
import { loadTokenizer, wordLevelTokenizerJson, writeWordLevelTokenizer } from "../src/index.js";
import { makeFolder, removeFolder } from "./tmpdir.js";

const folders: string[] = [];
afterAll(() => folders.forEach(removeFolder));

const VOCAB = { "<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3, Human: 4, ":": 5, fever: 6, "?": 7 };

describe("word-level tokenizer folders", () => {
  it("load as a WordLevel tokenizer: one id per word, unknown words <unk>, the config's flags and template", async () => {
    const dir = makeFolder(null, {});
    folders.push(dir);
    await writeWordLevelTokenizer(dir, VOCAB, {
      addBosToken: true,
      chatTemplate: "{% for m in messages %}{{ m['content'] }}{% endfor %}",
      modelMaxLength: 64,
    });
    const tok = await loadTokenizer(dir);
    expect(await tok.encode("Human: fever?")).toEqual([1, 4, 5, 6, 7]);
    expect(await tok.encode("Human: cough", { addSpecialTokens: false })).toEqual([4, 5, 0]);
    expect(tok).toMatchObject({ bosTokenId: 1, eosTokenId: 2, padTokenId: 3, addBosToken: true });
    expect(tok.addEosToken).toBe(false);
    expect(tok.modelMaxLength).toBe(64);
    expect(tok.applyChatTemplate([{ role: "user", content: "fever" }])).toBe("fever");
  });

  it("refuses a vocabulary whose special tokens are not at ids 0-3, naming the token", () => {
    let err: unknown;
    try {
      wordLevelTokenizerJson({ fever: 0, "<unk>": 1, "<s>": 2, "</s>": 3, "<pad>": 4 });
    } catch (e) {
      err = e;
    }
    expect(isHippoError(err)).toBe(true);
    expect(String(err)).toMatch(/<unk>/);
  });
});
