import { isHippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { expect, it, vi } from "vitest";
import { activateTfBackend, initBackend } from "../src/index.js";

it("turns a backend whose initialisation fails (setBackend -> false) into BACKEND_UNAVAILABLE", async () => {
  const running = await initBackend({ backend: "cpu" });
  // Real tfjs behaviour: a factory that throws makes setBackend resolve false and stay on the old backend.
  tf.registerBackend("hippo-broken-sync", () => {
    throw new Error("no such device");
  });
  tf.registerBackend("hippo-broken-async", () => Promise.reject(new Error("driver too old")));
  const warn = vi.spyOn(console, "warn").mockImplementation(() => {}); // tfjs logs the failure as well
  try {
    for (const name of ["hippo-broken-sync", "hippo-broken-async"]) {
      const err = await activateTfBackend(name, `test ${name}`).catch((e: unknown) => e);
      expect(isHippoError(err, "BACKEND_UNAVAILABLE")).toBe(true);
      expect(String(err)).toContain(`test ${name}: tf.setBackend("${name}") did not take effect`);
      expect(String(err)).toContain(`got setBackend -> false, getBackend() = "${name}"`);
      expect(String(err)).toContain("still on cpu");
      expect(tf.getBackend()).toBe(running.tfBackend);
    }
    const unknown = await activateTfBackend("hippo-never-registered", "test").catch((e: unknown) => e);
    expect(isHippoError(unknown, "BACKEND_UNAVAILABLE")).toBe(true);
    expect(tf.getBackend()).toBe("cpu");
    // tfjs did not quietly create the default (single-thread) wasm backend behind our back.
    expect(tf.engine().registry.wasm).toBeUndefined();
  } finally {
    warn.mockRestore();
    tf.removeBackend("hippo-broken-sync");
    tf.removeBackend("hippo-broken-async");
  }
});
