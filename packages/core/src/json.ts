/**
 * JSON from untrusted files: parse into prototype-free objects so keys like `__proto__` or `constructor`
 * are plain data and never reach Object.prototype, and report syntax errors with the file name.
 */
import { HippoError } from "./errors.js";
import { readTextFile } from "./text.js";

/** JSON.parse, with every object re-created without a prototype (own keys only, `__proto__` included). */
export function parseJsonSafe(text: string, file?: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text, (_key, v) => {
      if (v !== null && typeof v === "object" && !Array.isArray(v)) {
        const clean = Object.create(null) as Record<string, unknown>;
        for (const k of Object.keys(v)) clean[k] = (v as Record<string, unknown>)[k];
        return clean;
      }
      return v;
    });
  } catch (e) {
    throw new HippoError("INVALID_FORMAT", `invalid JSON: ${(e as Error).message}`, { file, cause: e });
  }
  return value;
}

/** Read a JSON file: strict UTF-8, prototype-free, errors naming the file. */
export async function readJsonFile(path: string): Promise<unknown> {
  return parseJsonSafe(await readTextFile(path), path);
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
