import { isHippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { describe, expect, it } from "vitest";
import { backendInfo, defaultWasmThreads, describeBackend, initBackend } from "../src/index.js";

describe("initBackend", () => {
  it("auto picks threaded SIMD wasm here and says so", async () => {
    const info = await initBackend({ backend: "auto" });
    expect(info.name).toBe("wasm");
    expect(tf.getBackend()).toBe("wasm");
    expect(info.simd).toBe(true);
    expect(info.threads).toBe(defaultWasmThreads());
    expect(describeBackend(info)).toBe(
      `wasm (SIMD, ${info.threads} thread${info.threads === 1 ? "" : "s"}) @tensorflow/tfjs-backend-wasm 4.22.0`,
    );
    expect(info.reason).toContain("@tensorflow/tfjs-node not installed");
    expect(backendInfo()).toBe(info);
  });

  it("is idempotent", async () => {
    const a = await initBackend();
    const b = await initBackend({ backend: "wasm" });
    expect(b).toBe(a);
  });

  it("names a missing native backend instead of falling back", async () => {
    const err = await initBackend({ backend: "tensorflow" }).catch((e: unknown) => e);
    expect(isHippoError(err, "BACKEND_UNAVAILABLE")).toBe(true);
    expect(String(err)).toContain("@tensorflow/tfjs-node is not installed");
    expect(tf.getBackend()).toBe("wasm");
  });
});
