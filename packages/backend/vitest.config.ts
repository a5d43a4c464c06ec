import { defineConfig } from "vitest/config";

// These tests are about how the backend is chosen from options and the environment, so they start from a
// clean environment (`npm test` sets HIPPO_THREADS=1 for the other packages) and set variables themselves.
delete process.env.HIPPO_THREADS;
delete process.env.HIPPO_BACKEND;

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    reporters: ["default", ["json", { outputFile: "test-results.json" }]],
    testTimeout: 600_000,
    hookTimeout: 600_000,
  },
});
