/**
 * Text normalisation for exact-duplicate removal and n-gram decontamination, and file hashing for manifests.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/**
 * Normalisation for duplicate detection: Unicode NFKC, lower case, runs of whitespace collapsed to one space,
 * trimmed. Two documents that differ only in case, spacing or compatibility characters count as duplicates.
 */
export function normalizeForDedup(text: string): string {
  return text.normalize("NFKC").toLowerCase().replace(/\s+/gu, " ").trim();
}

export function sha256Hex(text: string | Uint8Array): string {
  return createHash("sha256").update(text).digest("hex");
}

/** sha256 of a file, streamed. */
export async function sha256File(path: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).byteLength;
  }
  return { sha256: hash.digest("hex"), bytes };
}

/**
 * Words for n-gram overlap, as GPT-3's and Meditron's decontamination: lower case, punctuation removed
 * (anything that is not a letter, digit or whitespace becomes a space), split on whitespace.
 */
export function ngramWords(text: string): string[] {
  const cleaned = text
    .normalize("NFKC")
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]+/gu, " ");
  return cleaned.split(/\s+/u).filter((w) => w.length > 0);
}

/** All word n-grams of `words`, each joined by one space. */
export function* ngrams(words: readonly string[], n: number): Generator<string> {
  for (let i = 0; i + n <= words.length; i++) yield words.slice(i, i + n).join(" ");
}
