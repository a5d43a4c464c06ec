/**
 * Raw HTTP for the server tests: requests the openai client will not send (wrong content types, forged Host
 * headers, bodies declared but never sent, endless chunked bodies) and what came back, including whether the
 * connection was reset before the answer could be read.
 */
import { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, request } from "node:http";

export interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: unknown;
}

export interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string | number>;
  body?: string | Buffer;
}

function collect(res: IncomingMessage): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on("data", (c: Buffer) => chunks.push(c));
    res.on("error", reject);
    res.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let json: unknown = null;
      try {
        json = text ? JSON.parse(text) : null;
      } catch {
        json = null;
      }
      resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
    });
  });
}

/**
 * A POST to /v1/completions on its own connection (no keep-alive agent), JSON content type unless `headers`
 * say otherwise; the caller writes the body (or does not).
 */
export function completionsRequest(
  port: number,
  headers: Record<string, string | number> = {},
  onResponse?: (res: IncomingMessage) => void,
): ClientRequest {
  return request(
    {
      host: "127.0.0.1",
      port,
      path: "/v1/completions",
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      agent: false,
    },
    onResponse,
  );
}

/** One request on its own connection (no keep-alive agent), body sent whole. */
export function raw(port: number, r: RawRequest): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port,
        path: r.path,
        method: r.method ?? "POST",
        headers: r.headers ?? {},
        agent: false,
      },
      (res) => collect(res).then(resolve, reject),
    );
    req.on("error", reject);
    req.end(r.body);
  });
}

/** JSON POST with an explicit content type (default application/json). */
export function postJson(
  port: number,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  const data = typeof body === "string" ? body : JSON.stringify(body);
  return raw(port, {
    path,
    headers: { "content-type": "application/json", ...headers },
    body: data,
  });
}

/**
 * Send `declared` in Content-Length and then no body at all: what the server answers from the headers alone.
 * Resolves with the answer, or rejects when the connection is closed without one.
 */
export function declaredOnly(
  port: number,
  declared: number,
  headers: Record<string, string> = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = completionsRequest(port, { "content-length": declared, ...headers }, (res) =>
      collect(res).then((r) => {
        req.destroy();
        resolve(r);
      }, reject),
    );
    req.on("error", reject);
    req.flushHeaders();
  });
}

/**
 * Stream a chunked body of up to `total` bytes (one reused 64 KiB chunk, honouring backpressure, so this side
 * holds no more than a chunk) and stop as soon as the server answers. `reset` is the connection error seen
 * before the answer was read, if any.
 */
export function streamBody(
  port: number,
  total: number,
  headers: Record<string, string> = {},
): Promise<{ response: RawResponse | undefined; sent: number; reset: string | undefined }> {
  const chunk = Buffer.alloc(64 * 1024, 0x20);
  chunk.write('{"prompt":"');
  return new Promise((resolve) => {
    let sent = 0;
    let answered = false;
    let settled = false;
    const finish = (response: RawResponse | undefined, reset: string | undefined) => {
      if (settled) return;
      settled = true;
      req.destroy();
      resolve({ response, sent, reset });
    };
    const req = completionsRequest(port, { "transfer-encoding": "chunked", ...headers }, (res) => {
      answered = true;
      collect(res).then(
        (r) => finish(r, undefined),
        (e: Error) => finish(undefined, e.message),
      );
    });
    req.on("error", (e: NodeJS.ErrnoException) => finish(undefined, e.code ?? e.message));
    const pump = () => {
      while (!answered && !settled && sent < total) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once("drain", pump);
          return;
        }
      }
      if (!answered && !settled && sent >= total) req.end();
    };
    pump();
  });
}

/** Poll `cond` (every 5 ms) until it holds; fail with `what` after `limitMs` (a bound for failing, not a timing test). */
export async function waitFor(cond: () => boolean, what: string, limitMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
