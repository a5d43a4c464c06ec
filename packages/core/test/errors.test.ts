import { describe, expect, it } from "vitest";
import { describeValue, formatLocation, HippoError, isHippoError } from "../src/index.js";

describe("HippoError", () => {
  it("puts file, line, key, expected and got in the message", () => {
    const e = new HippoError("INVALID_RECORD", "wrong type", {
      file: "data/train.jsonl",
      line: 12,
      key: "output",
      expected: "string",
      got: "number 3",
    });
    expect(e.message).toBe('data/train.jsonl:12, key "output": wrong type (expected string, got number 3)');
    expect(e.code).toBe("INVALID_RECORD");
    expect(e.location).toEqual({ file: "data/train.jsonl", line: 12, key: "output" });
    expect(e.reason).toBe("wrong type");
    expect(e).toBeInstanceOf(Error);
    expect(isHippoError(e)).toBe(true);
    expect(isHippoError(e, "IO")).toBe(false);
    expect(isHippoError(new Error("x"))).toBe(false);
  });

  it("works without a location and keeps the cause", () => {
    const cause = new Error("inner");
    const e = new HippoError("IO", "disk full", { cause });
    expect(e.message).toBe("disk full");
    expect(e.cause).toBe(cause);
  });

  it("formats rows and truncates very long values", () => {
    expect(formatLocation({ file: "a.csv", row: 3, key: "answer" })).toBe('a.csv, row 3, key "answer"');
    const e = new HippoError("INVALID_FORMAT", "bad", { got: "x".repeat(500) });
    expect(e.message.length).toBeLessThan(260);
    expect(describeValue(null)).toBe("null");
    expect(describeValue([1, 2])).toBe("array(2)");
    expect(describeValue(3)).toBe("number 3");
    expect(describeValue("abc")).toBe('"abc"');
  });
});

describe("did you mean", () => {
  it("suggests the closest known name for a typo, and nothing for an unrelated name", async () => {
    const { closestMatch, editDistance, unknownNameMessage } = await import("../src/index.js");
    const keys = ["learning_rate", "num_train_epochs", "max_steps", "lora_alpha", "r"];
    expect(editDistance("kitten", "sitting")).toBe(3);
    expect(closestMatch("learning_rat", keys)).toBe("learning_rate");
    expect(closestMatch("learning-rate", keys)).toBe("learning_rate");
    expect(closestMatch("max_step", keys)).toBe("max_steps");
    expect(closestMatch("batch", keys)).toBeUndefined();
    expect(unknownNameMessage("key", "lora_alpah", keys)).toBe(
      'unknown key "lora_alpah"; did you mean "lora_alpha"?',
    );
    expect(unknownNameMessage("key", "zzz", keys)).toBe('unknown key "zzz"');
  });
});
