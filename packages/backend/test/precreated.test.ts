import { isHippoError } from "@hippocrates/core";
import * as tf from "@tensorflow/tfjs-core";
import { expect, it } from "vitest";
import { initBackend } from "../src/index.js";

it("reports a wasm backend tfjs created before initBackend (its thread count can no longer change)", async () => {
  // What happens when code touches tfjs first: tf.ready() initialises the highest-priority backend with
  // tfjs's own defaults, which under Node is the single-thread build.
  await tf.ready();
  expect(tf.getBackend()).toBe("wasm");
  const info = await initBackend();
  expect(info).toMatchObject({ name: "wasm", threads: 1 });
  expect(info.reason).toContain("wasm backend was created before initBackend (tfjs defaults), 1 thread(s)");
  const err = await initBackend({ threads: 2 }).catch((e: unknown) => e);
  expect(isHippoError(err, "UNSUPPORTED")).toBe(true);
});
