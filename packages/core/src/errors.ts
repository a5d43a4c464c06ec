/**
 * One error type for the whole project. Every failure that comes from bad input says where (file, line or
 * row, key) and what was expected versus what was found, so a user can fix the input without reading code.
 */

export type ErrorCode =
  | "INVALID_ARGUMENT"
  | "INVALID_CONFIG"
  | "INVALID_FORMAT"
  | "INVALID_RECORD"
  | "NOT_FOUND"
  | "UNSAFE_PATH"
  | "UNSUPPORTED"
  | "BACKEND_UNAVAILABLE"
  | "OUT_OF_MEMORY"
  | "IO"
  | "HTTP"
  | "ABORTED"
  | "INTERNAL";

export interface ErrorLocation {
  /** File the problem is in. */
  file?: string;
  /** 1-based line (text formats). */
  line?: number;
  /** 0-based row or record index (tabular formats, arrays). */
  row?: number;
  /** Key or JSON path, e.g. `model.layers.0.self_attn.q_proj.weight` or `stages[2].lr`. */
  key?: string;
}

export interface HippoErrorDetails extends ErrorLocation {
  expected?: string;
  got?: string;
  cause?: unknown;
}

function describe(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return value.length > 200 ? `${value.slice(0, 200)}...` : value;
}

export function formatLocation(loc: ErrorLocation): string {
  const parts: string[] = [];
  if (loc.file !== undefined) parts.push(loc.line !== undefined ? `${loc.file}:${loc.line}` : loc.file);
  else if (loc.line !== undefined) parts.push(`line ${loc.line}`);
  if (loc.row !== undefined) parts.push(`row ${loc.row}`);
  if (loc.key !== undefined) parts.push(`key "${loc.key}"`);
  return parts.join(", ");
}

export class HippoError extends Error {
  override readonly name = "HippoError";
  readonly code: ErrorCode;
  readonly location: ErrorLocation;
  readonly expected: string | undefined;
  readonly got: string | undefined;
  /** The message without location/expected/got decoration. */
  readonly reason: string;

  constructor(code: ErrorCode, reason: string, details: HippoErrorDetails = {}) {
    const { expected, got, cause, ...location } = details;
    const where = formatLocation(location);
    let message = where ? `${where}: ${reason}` : reason;
    const exp = describe(expected);
    const found = describe(got);
    if (exp !== undefined && found !== undefined) message += ` (expected ${exp}, got ${found})`;
    else if (exp !== undefined) message += ` (expected ${exp})`;
    else if (found !== undefined) message += ` (got ${found})`;
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.reason = reason;
    this.location = location;
    this.expected = expected;
    this.got = got;
  }
}

export function isHippoError(e: unknown, code?: ErrorCode): e is HippoError {
  return e instanceof HippoError && (code === undefined || e.code === code);
}

/** A short, printable description of any JS value for the `got` field of an error. */
export function describeValue(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return `array(${v.length})`;
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
  if (typeof v === "object") return "object";
  return `${typeof v} ${String(v)}`;
}
