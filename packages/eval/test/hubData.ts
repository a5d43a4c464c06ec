/**
 * The benchmark datasets on a loopback Hub, for tests that evaluate the built-in tasks without a data folder:
 * `../shared/data` laid out and encoded as the real repositories hold them (@hippocrates/hub/testing), each
 * repository at the commit the built-in task files pin (`dataset_kwargs.revision`), and `bigbio/pubmed_qa`'s
 * fold-0 export made with this package's `splitPqal`, the one implementation of PubMedQA's split.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { benchmarkRepos, type RepoSpec } from "@hippocrates/hub/testing";
import { orderedJsonEntries, readBuiltinTaskFiles, splitPqal } from "../src/index.js";

/** `dataset_path` -> the revision the built-in task files pin there. */
export function pinnedRevisions(): Map<string, string> {
  const pins = new Map<string, string>();
  for (const entry of readBuiltinTaskFiles()) {
    if (entry.kind !== "task") continue;
    const c = entry.task.harnessConfig ?? {};
    const kwargs = c.dataset_kwargs as { revision?: string } | undefined;
    if (typeof c.dataset_path === "string" && kwargs?.revision !== undefined)
      pins.set(c.dataset_path, kwargs.revision);
  }
  return pins;
}

/** PubMedQA's fold-0 split of the shared ori_pqal.json (PMIDs in file order), by `splitPqal`. */
export async function pubmedqaFold0(shared: string) {
  const file = join(shared, "benchmarks/pubmedqa/ori_pqal.json");
  const entries = orderedJsonEntries(await readFile(file, "utf8"), file);
  const { train, dev, test } = splitPqal(entries, (v) => (v as { final_decision: string }).final_decision);
  const ids = (xs: [string, unknown][]) => xs.map(([id]) => id);
  return { train: ids(train), validation: ids(dev), test: ids(test) };
}

/** Every benchmark repository, `main` at the commit the task files pin where they pin one. */
export async function pinnedBenchmarkRepos(shared: string): Promise<RepoSpec[]> {
  const pins = pinnedRevisions();
  const repos = await benchmarkRepos(shared, { pubmedqaFold0: await pubmedqaFold0(shared) });
  return repos.map((r) => {
    const pin = [r.id, ...(r.aliases ?? [])].map((id) => pins.get(id)).find((p) => p !== undefined);
    return pin !== undefined && /^[0-9a-f]{40}$/.test(pin) ? { ...r, commits: { main: pin } } : r;
  });
}
