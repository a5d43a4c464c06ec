/**
 * The loopback-Hub set-up that test files of code downloading through @hippocrates/hub repeat: a temporary
 * folder, the server, an empty cache folder and a cleared request log for each test, and the options that point
 * a call at them (no token, online, a recording progress reporter). Not tied to a test runner: a file calls
 * the steps from its own hooks, e.g. with vitest
 *
 *   const fx = hubFixture("hippo-model-hub-");
 *   beforeAll(() => fx.start({ repos: [...] }));
 *   afterAll(() => fx.close());
 *   beforeEach(() => fx.freshCache());
 *
 * and then `resolvePretrained("org/tiny", "model", fx.options({ offline: true }))`, `fx.hub.requests`,
 * `fx.cacheDir`.
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HubOptions } from "../env.js";
import { recordingProgress } from "./progress.js";
import { type HubServer, type HubServerOptions, startHubServer } from "./server.js";

export interface HubFixture {
  /** The running server (from `start` on). */
  readonly hub: HubServer;
  /** The fixture's temporary folder (from `start` on); `close` removes it. */
  readonly tmp: string;
  /** The current test's cache folder, inside `tmp` (from `freshCache` on). */
  readonly cacheDir: string;
  /** Make the temporary folder and start the server. */
  start(options: HubServerOptions): Promise<HubServer>;
  /** A new, empty cache folder for the next test, and an empty request log. */
  freshCache(): Promise<string>;
  /** Options for a call against the server with the current cache: `extra` over the defaults. */
  options<T extends HubOptions>(extra?: T): HubOptions & T;
  /** Stop the server and remove the temporary folder. */
  close(): Promise<void>;
}

export function hubFixture(prefix = "hippo-hub-"): HubFixture {
  let hub: HubServer | undefined;
  let tmp: string | undefined;
  let cacheDir: string | undefined;
  let caches = 0;
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined)
      throw new Error(`the Hub fixture has no ${what} yet (call start/freshCache first)`);
    return value;
  };
  return {
    get hub() {
      return need(hub, "server");
    },
    get tmp() {
      return need(tmp, "temporary folder");
    },
    get cacheDir() {
      return need(cacheDir, "cache folder");
    },
    async start(options) {
      tmp = await mkdtemp(join(tmpdir(), prefix));
      hub = await startHubServer(options);
      return hub;
    },
    async freshCache() {
      cacheDir = join(need(tmp, "temporary folder"), `cache-${caches++}`);
      await mkdir(cacheDir);
      need(hub, "server").requests.length = 0;
      return cacheDir;
    },
    options<T extends HubOptions>(extra?: T): HubOptions & T {
      return {
        endpoint: need(hub, "server").url,
        cacheDir: need(cacheDir, "cache folder"),
        token: false,
        offline: false,
        progress: recordingProgress().reporter,
        ...(extra as T),
      };
    },
    async close() {
      await hub?.close();
      if (tmp !== undefined) await rm(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * Save the environment variables `names` (the `HF_*` a test sets); the function returned puts each back as it
 * was, unset where it was unset.
 */
export function saveEnv(names: readonly string[]): () => void {
  const saved = names.map((name) => [name, process.env[name]] as const);
  return () => {
    for (const [name, value] of saved) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  };
}
