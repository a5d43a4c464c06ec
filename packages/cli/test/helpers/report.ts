/** Run folders written by hand for the report tests (no model is trained). */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

/** The manifest.json of a finished run (format hippo-run/1) with these stage records, as the runner writes it. */
export async function writeRunManifest(
  runDir: string,
  name: string,
  configFile: string,
  stages: unknown[],
): Promise<void> {
  await writeFile(
    join(runDir, "manifest.json"),
    JSON.stringify({
      format: "hippo-run/1",
      name,
      status: "done",
      createdAt: "2026-01-01T00:00:00.000Z",
      updatedAt: "2026-01-01T00:00:00.000Z",
      configFile,
      config: {},
      packages: {},
      backend: {},
      machine: { node: "v20", platform: "linux", cpu: "cpu", cores: 2 },
      stages,
    }),
  );
}
