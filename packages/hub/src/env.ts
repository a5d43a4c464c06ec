/**
 * Where the Hub cache lives, which endpoint and token to use, and whether to go online: the environment
 * variables of Python's `huggingface_hub` (`constants.py`, 0.2x-1.x), read the same way so that every tool on
 * the machine shares one cache and one login.
 */
import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import type { ProgressReporter } from "@hippocrates/core";

export const DEFAULT_ENDPOINT = "https://huggingface.co";

/** Options every Hub call takes; each defaults to the environment, as in Python. */
export interface HubOptions {
  /** The hub cache folder (`models--org--name/...` live in it). Default `$HF_HUB_CACHE`, else `$HF_HOME/hub`. */
  cacheDir?: string;
  /** Hub URL. Default `$HF_ENDPOINT`, else https://huggingface.co. */
  endpoint?: string;
  /**
   * Access token (`hf_...`). Default `$HF_TOKEN`, else the file `huggingface-cli login` writes
   * (`$HF_TOKEN_PATH`, else `$HF_HOME/token`). `false` sends none.
   */
  token?: string | false;
  /** Cache only, never a request. Default `HF_HUB_OFFLINE` in 1/ON/YES/TRUE. */
  offline?: boolean;
  /**
   * Ask the Hub for the revision's current commit even when the cache already holds a snapshot for it
   * (a branch such as `main` can move). Default false: a cached snapshot is used without any request.
   */
  refresh?: boolean;
  /** Download progress (one task per repository, in bytes). Default: a bar on stderr. */
  progress?: ProgressReporter;
  /** Stops a download; the partial `.incomplete` file stays and the next call resumes it. */
  signal?: AbortSignal;
  /** Replaces the global fetch (proxies, tests). */
  fetch?: typeof fetch;
}

export interface HubSettings {
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  offline: boolean;
}

/** `huggingface_hub.utils._is_true`: "1", "ON", "YES", "TRUE" in any case. */
function isTrue(value: string | undefined): boolean {
  return value !== undefined && ["1", "ON", "YES", "TRUE"].includes(value.toUpperCase());
}

/** `os.path.expanduser`, which Python applies to every path variable. */
function expandUser(path: string): string {
  return path === "~" || path.startsWith("~/") ? join(homedir(), path.slice(1)) : path;
}

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
}

/** `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`. */
export function hfHome(): string {
  const home = env("HF_HOME");
  if (home !== undefined) return expandUser(home);
  return join(expandUser(env("XDG_CACHE_HOME") ?? "~/.cache"), "huggingface");
}

/** `$HF_HUB_CACHE`, else the legacy `$HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`. */
export function defaultCacheDir(): string {
  const dir = env("HF_HUB_CACHE") ?? env("HUGGINGFACE_HUB_CACHE");
  return dir !== undefined ? expandUser(dir) : join(hfHome(), "hub");
}

/**
 * `huggingface_hub.get_token()`: `$HF_TOKEN` (or the legacy `$HUGGING_FACE_HUB_TOKEN`), else the first line of
 * the token file, stripped. A missing or unreadable file means no token.
 */
export function defaultToken(): string | undefined {
  const fromEnv = env("HF_TOKEN") ?? env("HUGGING_FACE_HUB_TOKEN");
  if (fromEnv !== undefined) return fromEnv.trim();
  const file = expandUser(env("HF_TOKEN_PATH") ?? join(hfHome(), "token"));
  try {
    const token = readFileSync(file, "utf8").split("\n")[0]?.trim();
    return token === undefined || token === "" ? undefined : token;
  } catch {
    return undefined;
  }
}

export function hubSettings(options: HubOptions = {}): HubSettings {
  const endpoint = (options.endpoint ?? env("HF_ENDPOINT") ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  return {
    cacheDir: options.cacheDir ?? defaultCacheDir(),
    endpoint,
    token: options.token === false ? undefined : (options.token ?? defaultToken()),
    offline: options.offline ?? isTrue(env("HF_HUB_OFFLINE")),
  };
}
