/**
 * A loopback Hugging Face Hub for offline tests: it answers the endpoints `@huggingface/hub` 2.x calls, with
 * the Hub's status codes and headers, for repositories made in the test.
 *
 *   GET  /api/{models|datasets}/<repo>/revision/<rev>      repository info with `sha` (modelInfo/datasetInfo)
 *   GET  /api/{models|datasets}/<repo>/tree/<rev>[/<dir>]  listing with oid, size, lfs {oid, size, pointerSize},
 *                                                           paginated with a `Link: <...>; rel="next"` header
 *   POST /api/{models|datasets}/<repo>/paths-info/<rev>     {paths, expand} -> entries (downloadFileToCacheDir)
 *   GET|HEAD /<repo>/resolve/<rev>/<path>                   (datasets: /datasets/<repo>/resolve/...)
 *        small files: 200/206 with ETag "<git sha1>", X-Repo-Commit, Accept-Ranges, Content-Range
 *        LFS files:   302 to the storage host with ETag and X-Linked-Etag "<sha256>", X-Linked-Size, X-Repo-Commit
 *   GET  <storage>/lfs/<sha256>                              the bytes, with Range support (another origin)
 *
 * Errors as the Hub sends them: unknown repository 401 (no token) or 404, `X-Error-Code: RepoNotFound`; unknown
 * revision 404 `RevisionNotFound` ("Invalid rev id"); unknown file 404 `EntryNotFound`; gated repository 401
 * (no token) or 403 (token without access) `GatedRepo` on downloads while its metadata stays public. Every request
 * is recorded, and faults can be injected into file bodies: cut the connection, stall, corrupt a byte, or ignore
 * Range.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { RepoType } from "../repo-id.js";
import {
  type PreparedFile,
  type PreparedRepo,
  type PreparedRevision,
  prepareRepo,
  type RepoSpec,
} from "./repo.js";

export interface RecordedRequest {
  host: "hub" | "storage";
  method: string;
  /** Path and query as received. */
  url: string;
  range: string | undefined;
  authorization: string | undefined;
  status: number;
}

export type FaultKind = "cut" | "stall" | "corrupt" | "ignore-range";

export interface FaultSpec {
  /** File path inside the repository. */
  path: string;
  kind: FaultKind;
  /** `cut`/`stall`: bytes sent before the fault; `corrupt`: the byte offset flipped. Default: half the file. */
  afterBytes?: number;
  /** How many body responses it applies to (default 1). */
  times?: number;
}

export interface Fault {
  /** Resolves when a `stall` or `cut` fault has sent its bytes. */
  reached: Promise<void>;
  /** Ends a stalled response (by closing its connection). */
  release(): void;
}

export interface HubServer {
  /** The endpoint (HF_ENDPOINT). */
  url: string;
  storageUrl: string;
  requests: RecordedRequest[];
  addRepo(spec: RepoSpec): PreparedRepo;
  /** The commit sha a revision of a repository has on this server. */
  commitOf(id: string, revision?: string, type?: RepoType): string;
  fault(spec: FaultSpec): Fault;
  close(): Promise<void>;
}

export interface HubServerOptions {
  repos?: RepoSpec[];
  /** Entries per tree page (the Hub uses 1000; small values exercise pagination). */
  treePageSize?: number;
}

interface ActiveFault extends FaultSpec {
  left: number;
  reachedResolve: () => void;
  released: Promise<void>;
}

const key = (type: RepoType, id: string) => `${type}:${id}`;

function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  return h?.startsWith("Bearer ") ? h.slice(7) : undefined;
}

function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function hubError(res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: message }, { "X-Error-Code": code, "X-Error-Message": message });
}

function parseRange(header: string | undefined, size: number): [number, number] | null | "invalid" {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (m === null) return "invalid";
  let start: number;
  let end: number;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start > end || start >= size) return "invalid";
  return [start, end];
}

function treeEntry(f: PreparedFile, commit: PreparedRevision, expand: boolean): Record<string, unknown> {
  const entry: Record<string, unknown> = { type: "file", oid: f.oid, size: f.size, path: f.path };
  if (f.lfs) entry.lfs = { oid: f.sha256, size: f.size, pointerSize: 134 };
  if (expand) entry.lastCommit = { id: commit.commit, title: "Upload", date: "2024-01-01T00:00:00.000Z" };
  return entry;
}

export async function startHubServer(options: HubServerOptions = {}): Promise<HubServer> {
  const repos = new Map<string, PreparedRepo>();
  /** Former id -> current id, per type. */
  const aliases = new Map<string, string>();
  const requests: RecordedRequest[] = [];
  const faults: ActiveFault[] = [];
  const pageSize = options.treePageSize ?? 1000;
  let hubUrl = "";
  let storageUrl = "";
  const blobs = new Map<string, PreparedFile>();

  const addRepo = (spec: RepoSpec): PreparedRepo => {
    const prepared = prepareRepo(spec);
    repos.set(key(prepared.type, prepared.id), prepared);
    for (const old of spec.aliases ?? []) aliases.set(key(prepared.type, old), prepared.id);
    for (const rev of prepared.revisions.values())
      for (const f of rev.files.values()) if (f.lfs) blobs.set(f.sha256, f);
    return prepared;
  };
  for (const spec of options.repos ?? []) addRepo(spec);

  const record = (host: RecordedRequest["host"], req: IncomingMessage, res: ServerResponse) => {
    const entry: RecordedRequest = {
      host,
      method: req.method ?? "GET",
      url: req.url ?? "",
      range: req.headers.range,
      authorization: req.headers.authorization,
      status: 0,
    };
    requests.push(entry);
    res.on("finish", () => {
      entry.status = res.statusCode;
    });
    res.on("close", () => {
      entry.status ||= res.statusCode;
    });
  };

  /** Find `<org>/<name>` or `<name>` at the start of `parts`; returns the repo and the remaining parts. */
  const findRepo = (type: RepoType, parts: string[]): { id: string; rest: string[] } | null => {
    for (const n of [2, 1]) {
      if (parts.length < n) continue;
      const id = parts.slice(0, n).join("/");
      if (repos.has(key(type, id))) return { id, rest: parts.slice(n) };
    }
    return null;
  };

  const canAccess = (repo: PreparedRepo, token: string | undefined) =>
    token !== undefined && (repo.spec.allowedTokens ?? []).includes(token);

  /** The repository, or null after answering as the Hub does for a missing (or hidden private) one. */
  const visibleRepo = (
    type: RepoType,
    parts: string[],
    req: IncomingMessage,
    res: ServerResponse,
  ): { repo: PreparedRepo; rest: string[] } | null => {
    const found = findRepo(type, parts);
    const token = bearer(req);
    if (found === null) {
      for (const n of [2, 1]) {
        const old = parts.slice(0, n).join("/");
        const current = parts.length >= n ? aliases.get(key(type, old)) : undefined;
        if (current === undefined) continue;
        // A renamed repository: the Hub redirects the old id (307 keeps the method and body).
        const location = (req.url ?? "").replace(`/${old}/`, `/${current}/`);
        res.writeHead(307, { Location: location, "Content-Type": "text/plain" });
        res.end(`Temporary Redirect. Redirecting to ${location}`);
        return null;
      }
    }
    const repo = found === null ? undefined : repos.get(key(type, found.id));
    if (found === null || repo === undefined || (repo.spec.private === true && !canAccess(repo, token))) {
      // The Hub does not tell an anonymous caller whether a repository exists: 401 without a token.
      hubError(res, token === undefined ? 401 : 404, "RepoNotFound", "Repository not found");
      return null;
    }
    return { repo, rest: found.rest };
  };

  const revisionOf = (repo: PreparedRepo, rev: string): PreparedRevision | undefined => {
    const named = repo.revisions.get(rev);
    if (named !== undefined) return named;
    for (const r of repo.revisions.values()) if (r.commit === rev) return r;
    return undefined;
  };

  const takeFault = (path: string, length: number): ActiveFault | undefined => {
    if (length <= 1) return undefined; // the library's `Range: bytes=0-0` probe is not a download
    const f = faults.find((x) => x.path === path && x.left > 0);
    if (f !== undefined) f.left--;
    return f;
  };

  const sendBody = (
    req: IncomingMessage,
    res: ServerResponse,
    file: PreparedFile,
    headers: Record<string, string>,
  ) => {
    const size = file.size;
    let range = parseRange(req.headers.range, size);
    if (range === "invalid") {
      res.writeHead(416, { "Content-Range": `bytes */${size}` });
      res.end();
      return;
    }
    const probeLength = range === null ? size : range[1] - range[0] + 1;
    const fault = req.method === "GET" ? takeFault(file.path, probeLength) : undefined;
    if (fault?.kind === "ignore-range") range = null;
    const [start, end] = range ?? [0, size - 1];
    let body = Buffer.from(file.bytes.buffer, file.bytes.byteOffset + start, Math.max(0, end - start + 1));
    const common = { ...headers, "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream" };
    if (range === null) res.writeHead(200, { ...common, "Content-Length": size });
    else
      res.writeHead(206, {
        ...common,
        "Content-Length": body.byteLength,
        "Content-Range": `bytes ${start}-${end}/${size}`,
      });
    if (req.method === "HEAD") {
      res.end();
      return;
    }
    if (fault === undefined) {
      res.end(body);
      return;
    }
    const after = Math.min(fault.afterBytes ?? Math.floor(size / 2), body.byteLength);
    if (fault.kind === "corrupt") {
      body = Buffer.from(body);
      const at = Math.max(0, Math.min(body.byteLength - 1, after - start));
      body[at] = (body[at] as number) ^ 0xff;
      res.end(body);
      return;
    }
    if (fault.kind === "ignore-range") {
      res.end(body);
      return;
    }
    res.write(body.subarray(0, after), () => {
      fault.reachedResolve();
      if (fault.kind === "cut") res.socket?.destroy();
      else void fault.released.then(() => res.socket?.destroy());
    });
  };

  const handleApi = async (
    req: IncomingMessage,
    res: ServerResponse,
    parts: string[],
    query: URLSearchParams,
  ) => {
    const type: RepoType | undefined =
      parts[0] === "models" ? "model" : parts[0] === "datasets" ? "dataset" : undefined;
    if (type === undefined) return hubError(res, 404, "NotFound", "Not found");
    const found = visibleRepo(type, parts.slice(1), req, res);
    if (found === null) return;
    const { repo, rest } = found;
    const [op, revRaw, ...subPath] = rest;
    const rev = revisionOf(repo, decodeURIComponent(revRaw ?? "main"));
    if (rev === undefined)
      return hubError(res, 404, "RevisionNotFound", `Invalid rev id: ${decodeURIComponent(revRaw ?? "")}`);
    if (op === "revision" && req.method === "GET") {
      return sendJson(res, 200, {
        _id: createHash("sha1").update(repo.id).digest("hex").slice(0, 24),
        id: repo.id,
        private: repo.spec.private === true,
        gated: repo.spec.gated === true ? "manual" : false,
        disabled: false,
        downloads: 0,
        likes: 0,
        lastModified: "2024-01-01T00:00:00.000Z",
        sha: rev.commit,
        siblings: [...rev.files.keys()].map((rfilename) => ({ rfilename })),
        pipeline_tag: type === "model" ? "text-generation" : undefined, // dropped by JSON for datasets
      });
    }
    if (op === "tree" && req.method === "GET") {
      const dir = subPath.map(decodeURIComponent).join("/");
      const recursive = query.get("recursive") === "true";
      const expand = query.get("expand") === "true";
      const entries: Record<string, unknown>[] = [];
      const dirs = new Set<string>();
      for (const f of [...rev.files.values()].sort((a, b) => (a.path < b.path ? -1 : 1))) {
        if (dir !== "" && !f.path.startsWith(`${dir}/`)) continue;
        const rel = dir === "" ? f.path : f.path.slice(dir.length + 1);
        const slash = rel.indexOf("/");
        if (slash >= 0) {
          const sub = (dir === "" ? "" : `${dir}/`) + rel.slice(0, slash);
          if (!dirs.has(sub)) {
            dirs.add(sub);
            entries.push({ type: "directory", oid: "0".repeat(40), size: 0, path: sub });
          }
          if (!recursive) continue;
        }
        entries.push(treeEntry(f, rev, expand));
      }
      if (dir !== "" && entries.length === 0)
        return hubError(res, 404, "EntryNotFound", `${dir} does not exist`);
      const cursor = Number(query.get("cursor") ?? "0");
      const page = entries.slice(cursor, cursor + pageSize);
      const headers: Record<string, string> = {};
      if (cursor + pageSize < entries.length) {
        const next = new URL(`${hubUrl}${req.url}`);
        next.searchParams.set("cursor", String(cursor + pageSize));
        headers.Link = `<${next.href}>; rel="next"`;
      }
      return sendJson(res, 200, page, headers);
    }
    if (op === "paths-info" && req.method === "POST") {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      let body: { paths?: unknown; expand?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        return hubError(res, 400, "BadRequest", "invalid JSON body");
      }
      const paths = Array.isArray(body.paths)
        ? body.paths.filter((p): p is string => typeof p === "string")
        : [];
      return sendJson(
        res,
        200,
        paths.flatMap((p) => {
          const f = rev.files.get(p);
          return f === undefined ? [] : [treeEntry(f, rev, body.expand === true)];
        }),
      );
    }
    return hubError(res, 404, "NotFound", "Not found");
  };

  const handleResolve = (req: IncomingMessage, res: ServerResponse, type: RepoType, parts: string[]) => {
    const found = visibleRepo(type, parts, req, res);
    if (found === null) return;
    const { repo, rest } = found;
    if (rest[0] !== "resolve" || rest.length < 3) return hubError(res, 404, "NotFound", "Not found");
    const revName = decodeURIComponent(rest[1] as string);
    const rev = revisionOf(repo, revName);
    if (rev === undefined) return hubError(res, 404, "RevisionNotFound", `Invalid rev id: ${revName}`);
    const token = bearer(req);
    if (repo.spec.gated === true && !canAccess(repo, token)) {
      const what = `${type === "dataset" ? "dataset" : "model"} ${repo.id}`;
      return token === undefined
        ? hubError(
            res,
            401,
            "GatedRepo",
            `Access to ${what} is restricted. You must have access to it and be authenticated to access it. Please log in.`,
          )
        : hubError(
            res,
            403,
            "GatedRepo",
            `Access to ${what} is restricted and you are not in the authorized list. Visit ${hubUrl}/${repo.id} to ask for access.`,
          );
    }
    const path = rest.slice(2).map(decodeURIComponent).join("/");
    const file = rev.files.get(path);
    if (file === undefined)
      return hubError(res, 404, "EntryNotFound", `${path} does not exist on "${revName}"`);
    if (file.lfs) {
      const location = `${storageUrl}/lfs/${file.sha256}?X-Amz-Expires=3600&response-content-disposition=attachment`;
      res.writeHead(302, {
        Location: location,
        ETag: `"${file.sha256}"`,
        "X-Linked-Etag": `"${file.sha256}"`,
        "X-Linked-Size": String(file.size),
        "X-Repo-Commit": rev.commit,
        "Content-Type": "text/plain; charset=utf-8",
      });
      res.end(req.method === "HEAD" ? undefined : `Found. Redirecting to ${location}`);
      return;
    }
    sendBody(req, res, file, { ETag: `"${file.oid}"`, "X-Repo-Commit": rev.commit });
  };

  const hub = createServer((req, res) => {
    record("hub", req, res);
    const url = new URL(req.url ?? "/", "http://localhost");
    const parts = url.pathname.split("/").filter(Boolean);
    const done = (p: Promise<void> | void) =>
      Promise.resolve(p).catch((e) => {
        if (!res.headersSent) hubError(res, 500, "Internal", String(e));
        else res.destroy();
      });
    if (parts[0] === "api") void done(handleApi(req, res, parts.slice(1), url.searchParams));
    else if (parts[0] === "datasets") void done(handleResolve(req, res, "dataset", parts.slice(1)));
    else void done(handleResolve(req, res, "model", parts));
  });

  const storage = createServer((req, res) => {
    record("storage", req, res);
    const m = /^\/lfs\/([0-9a-f]{64})(?:\?|$)/.exec(req.url ?? "");
    const file = m === null ? undefined : blobs.get(m[1] as string);
    if (file === undefined) {
      res.writeHead(404, { "Content-Type": "application/xml" });
      res.end("<Error><Code>NoSuchKey</Code></Error>");
      return;
    }
    // Object stores name objects by their own etag (an md5 here), not the sha256 the Hub uses.
    sendBody(req, res, file, { ETag: `"${createHash("md5").update(file.bytes).digest("hex")}"` });
  });

  // Loopback only. The storage host must have another host *name* than the Hub, as on huggingface.co (its LFS
  // files live on a CDN host): Python's huggingface_hub follows a HEAD redirect to the same host name (any port)
  // and would then miss X-Repo-Commit. "localhost" resolves to the loopback address the server is bound to.
  const listen = (server: Server, host: string) =>
    new Promise<string>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, host, () => resolve(`http://${host}:${(server.address() as AddressInfo).port}`));
    });
  hubUrl = await listen(hub, "127.0.0.1");
  storageUrl = await listen(storage, "localhost");

  return {
    url: hubUrl,
    storageUrl,
    requests,
    addRepo,
    commitOf(id, revision = "main", type = "model") {
      const repo = repos.get(key(type, id));
      const rev = repo?.revisions.get(revision);
      if (rev === undefined) throw new Error(`no ${type} ${id}@${revision} on the test Hub`);
      return rev.commit;
    },
    fault(spec) {
      let reachedResolve!: () => void;
      let release!: () => void;
      const reached = new Promise<void>((r) => {
        reachedResolve = r;
      });
      const released = new Promise<void>((r) => {
        release = r;
      });
      faults.push({ ...spec, left: spec.times ?? 1, reachedResolve, released });
      return { reached, release };
    },
    async close() {
      for (const f of faults) f.left = 0;
      for (const server of [hub, storage]) {
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
    },
  };
}
