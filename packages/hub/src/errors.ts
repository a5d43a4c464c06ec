/**
 * Hub failures as HippoErrors that say what to do: a gated repository names the page where access is
 * requested and the two ways to give a token; a 404 names the id, the revision and the file; an unreachable
 * Hub names the endpoint and offline mode. `@huggingface/hub` throws `HubApiError` (status + the body's `error`
 * text) for HTTP errors and lets fetch's TypeError through for network failures.
 */
import { HippoError, isHippoError } from "@hippocrates/core";
import { HubApiError } from "@huggingface/hub";
import { describeRef, type RepoType, repoPageUrl } from "./repo-id.js";

export interface ErrorContext {
  repo: string;
  type: RepoType;
  revision: string;
  endpoint: string;
  /** Whether a token was sent. */
  tokenSent: boolean;
  /** The repository is gated (from its info), when known. */
  gated?: boolean;
  /** The file being fetched, when the error is about one file. */
  path?: string;
}

const LOGIN = "set HF_TOKEN=hf_... or run `huggingface-cli login` (it writes $HF_HOME/token)";

function what(ctx: ErrorContext): string {
  return `${ctx.type === "dataset" ? "dataset " : ""}${describeRef(ctx.repo, ctx.revision)}`;
}

/** Convert anything thrown by a Hub call into a HippoError (HippoErrors pass through). */
export function hubError(e: unknown, ctx: ErrorContext): HippoError {
  if (isHippoError(e)) return e;
  const page = repoPageUrl(ctx.endpoint, ctx.repo, ctx.type);
  const file = ctx.path === undefined ? undefined : `${what(ctx)}: ${ctx.path}`;
  if (e instanceof HubApiError) {
    const message = e.message.replace(/\. URL: .*$/s, "");
    const gated = ctx.gated === true || /restricted|gated/i.test(message);
    if (e.statusCode === 401 || e.statusCode === 403) {
      if (gated && (e.statusCode === 403 || ctx.tokenSent)) {
        return new HippoError(
          "HTTP",
          `${what(ctx)} is a gated repository and your token has no access to it: request access on ${page} ` +
            "(logged in as the account whose token you use), then run again",
          { file, got: `HTTP ${e.statusCode}: ${message}`, cause: e },
        );
      }
      if (gated) {
        return new HippoError(
          "HTTP",
          `${what(ctx)} is a gated repository and no token was sent: request access on ${page}, then ${LOGIN}`,
          { file, got: `HTTP ${e.statusCode}: ${message}`, cause: e },
        );
      }
      return new HippoError(
        "NOT_FOUND",
        ctx.tokenSent
          ? `${what(ctx)} was not found on the Hub, or your token has no access to it (check the id and the token)`
          : `${what(ctx)} was not found on the Hub, or it is private: if you have access, ${LOGIN}`,
        { file, got: `HTTP ${e.statusCode}: ${message}`, cause: e },
      );
    }
    if (e.statusCode === 404) {
      if (ctx.path !== undefined) {
        return new HippoError("NOT_FOUND", `${what(ctx)} has no file ${ctx.path}`, { file, cause: e });
      }
      if (/rev|branch|commit/i.test(message)) {
        return new HippoError(
          "NOT_FOUND",
          `${ctx.repo} has no revision "${ctx.revision}" on the Hub (a branch, tag or commit sha)`,
          { got: message, cause: e },
        );
      }
      return new HippoError("NOT_FOUND", `${what(ctx)} was not found on the Hub (${page})`, {
        got: message,
        cause: e,
      });
    }
    return new HippoError("HTTP", `the Hub answered HTTP ${e.statusCode} for ${what(ctx)}`, {
      file,
      got: message,
      cause: e,
    });
  }
  const err = e as Error;
  if (err?.name === "AbortError" || err?.name === "TimeoutError") {
    return new HippoError("ABORTED", `download of ${what(ctx)} was stopped; run again to resume it`, {
      file,
      cause: e,
    });
  }
  if (err instanceof TypeError && /must start with 'hf_'/.test(err.message)) {
    return new HippoError("INVALID_ARGUMENT", "the Hub token is not a user access token", {
      key: "HF_TOKEN",
      expected: "a token starting with hf_ (https://huggingface.co/settings/tokens)",
      cause: e,
    });
  }
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const detail = cause?.code ?? cause?.message ?? err?.message ?? String(e);
  return new HippoError(
    "HTTP",
    `could not reach the Hub at ${ctx.endpoint} for ${what(ctx)} (${detail}); ` +
      "with the files already in the cache, set HF_HUB_OFFLINE=1 to use them without the network",
    { file, cause: e },
  );
}
