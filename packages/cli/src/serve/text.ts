/**
 * Token strings and character offsets for `logprobs`, and stop-string handling. OpenAI's (and vLLM's)
 * `logprobs.tokens` concatenate to the echoed text and `text_offset[i]` is where token i starts in it, so a
 * client can split context from continuation by offset as well as by token count.
 */
import type { ServeTokenizer } from "./types.js";

export interface Pieces {
  /** The text the pieces concatenate to. */
  text: string;
  tokens: string[];
  offsets: number[];
}

async function decodeMany(tokenizer: ServeTokenizer, seqs: number[][]): Promise<string[]> {
  const batch = (tokenizer as { decodeBatch?: (ids: number[][]) => Promise<string[]> }).decodeBatch;
  if (typeof batch === "function") return batch.call(tokenizer, seqs);
  return Promise.all(seqs.map((s) => tokenizer.decode(s)));
}

/**
 * Pieces of `ids` by incremental decoding: piece i is what decoding ids[0..i] adds to decoding ids[0..i-1]
 * (this keeps SentencePiece's leading spaces on the token they belong to). `prefix` tokens come before `ids`
 * and are not part of the result (the prompt, when only the completion is wanted).
 */
export async function decodePieces(
  tokenizer: ServeTokenizer,
  ids: number[],
  prefix: number[] = [],
): Promise<Pieces> {
  const known = (xs: number[]) => xs.filter((t) => t >= 0);
  const seqs: number[][] = [known(prefix)];
  for (let i = 1; i <= ids.length; i++) seqs.push(known([...prefix, ...ids.slice(0, i)]));
  const texts = await decodeMany(tokenizer, seqs);
  const base = texts[0] as string;
  const tokens: string[] = [];
  const offsets: number[] = [];
  let prev = base;
  let pos = 0;
  for (let i = 1; i < texts.length; i++) {
    const cur = texts[i] as string;
    // Decoders that tidy spacing can rewrite the tail; keep the common prefix and take the rest.
    let common = 0;
    const max = Math.min(prev.length, cur.length);
    while (common < max && prev.charCodeAt(common) === cur.charCodeAt(common)) common++;
    const piece = common >= prev.length ? cur.slice(prev.length) : cur.slice(Math.max(common, base.length));
    offsets.push(pos);
    tokens.push(piece);
    pos += piece.length;
    prev = cur;
  }
  return { text: tokens.join(""), tokens, offsets };
}

/**
 * Pieces of a string prompt from the tokenizer's offsets: token i spans from the end of token i-1 to its own
 * end, so the whitespace before a word belongs to it (" Paris") and the pieces concatenate to the prompt.
 */
export function promptPieces(text: string, offsets: [number, number][]): Pieces {
  const tokens: string[] = [];
  const starts: number[] = [];
  let pos = 0;
  offsets.forEach(([, end], i) => {
    const stop = i === offsets.length - 1 ? text.length : Math.max(end, pos);
    starts.push(pos);
    tokens.push(text.slice(pos, stop));
    pos = stop;
  });
  return { text, tokens, offsets: starts };
}

/** Cut `text` at the first stop string; returns the kept text and whether a stop was found. */
export function applyStop(text: string, stops: string[]): { text: string; stopped: boolean } {
  let cut = -1;
  for (const s of stops) {
    if (s === "") continue;
    const i = text.indexOf(s);
    if (i >= 0 && (cut < 0 || i < cut)) cut = i;
  }
  return cut < 0 ? { text, stopped: false } : { text: text.slice(0, cut), stopped: true };
}
