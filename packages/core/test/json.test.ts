import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { HippoError, parseJsonSafe, readJsonFile } from "../src/index.js";

describe("parseJsonSafe", () => {
  it("keeps __proto__ and constructor as plain data without touching Object.prototype", () => {
    const v = parseJsonSafe(
      '{"__proto__": {"polluted": true}, "constructor": 1, "a": {"__proto__": 2}}',
    ) as Record<string, unknown>;
    expect(Object.keys(v)).toEqual(["__proto__", "constructor", "a"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(v)).toBeNull();
    expect(Object.getOwnPropertyDescriptor(v.a, "__proto__")?.value).toBe(2);
  });

  it("names the file on a syntax error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hippo-json-"));
    const file = join(dir, "config.json");
    await writeFile(file, '{"a": ');
    await expect(readJsonFile(file)).rejects.toThrow(/config\.json: invalid JSON/);
    await expect(readJsonFile(join(dir, "missing.json"))).rejects.toMatchObject({ code: "NOT_FOUND" });
    expect(() => parseJsonSafe("[1,", "x.json")).toThrow(HippoError);
  });
});
