/**
 * Task lookup by name and profile. A task file says which profiles its name resolves in (`medmcqa` and
 * `pubmedqa` have one file per profile, the harnesses format them differently). Built-ins and user tasks go
 * through the same path: a task file parsed by `parseTaskFile`, then `register`; code can also add a
 * `TaskDefinition` with `defineTask`.
 */
import { closestMatch, HippoError } from "@hippocrates/core";
import { readBuiltinTaskFiles } from "./builtin.js";
import { PROFILES, type Profile, type TaskFileEntry } from "./taskfile.js";
import type { TaskDefinition, TaskGroup } from "./types.js";
import { withVariant } from "./variants.js";

export { PROFILES, type Profile };

export interface TaskRegistry {
  /** Add a task; `profiles` limits where its name resolves (default: both). Replaces a task of the same name. */
  register(task: TaskDefinition, options?: { profiles?: readonly Profile[] }): void;
  registerGroup(group: TaskGroup): void;
  /** A parsed task file: its task (and prompt variants) or its group. */
  registerEntry(entry: TaskFileEntry): void;
  get(name: string, profile: Profile): TaskDefinition;
  group(name: string): TaskGroup | undefined;
  /** Expand names (tasks or groups) into tasks, in order, without duplicates; groups are listed too. */
  resolve(names: readonly string[], profile: Profile): { tasks: TaskDefinition[]; groups: TaskGroup[] };
  names(profile: Profile): string[];
}

const NAME_RE = /^[A-Za-z0-9_.-]+$/;

export function validateTaskDefinition(task: TaskDefinition, file?: string): void {
  const where = file === undefined ? {} : { file };
  if (typeof task.name !== "string" || !NAME_RE.test(task.name)) {
    throw new HippoError("INVALID_CONFIG", "task name must be letters, digits, _ . -", {
      ...where,
      key: "name",
      got: String(task.name),
    });
  }
  if (!Number.isInteger(task.version))
    throw new HippoError("INVALID_CONFIG", "task version must be an integer", { ...where, key: "version" });
  for (const fn of ["load", "docToText", "docToChoices"] as const) {
    if (typeof task[fn] !== "function")
      throw new HippoError("INVALID_CONFIG", `task ${task.name}: missing function ${fn}`, {
        ...where,
        key: fn,
      });
  }
  if (typeof task.targetDelimiter !== "string")
    throw new HippoError("INVALID_CONFIG", `task ${task.name}: targetDelimiter must be a string`, {
      ...where,
      key: "targetDelimiter",
    });
  if (!["train", "test", "dev_first_k"].includes(task.fewshot)) {
    throw new HippoError("INVALID_CONFIG", `task ${task.name}: unknown few-shot source`, {
      ...where,
      key: "fewshot",
      expected: "train, test or dev_first_k",
      got: String(task.fewshot),
    });
  }
  if (
    !Array.isArray(task.metrics) ||
    task.metrics.length === 0 ||
    !task.metrics.every((m) => m === "acc" || m === "acc_norm")
  ) {
    throw new HippoError(
      "INVALID_CONFIG",
      `task ${task.name}: metrics must be a non-empty list of acc, acc_norm`,
      { ...where, key: "metrics" },
    );
  }
}

export function createTaskRegistry(options: { builtins?: boolean } = {}): TaskRegistry {
  const byProfile = new Map<Profile, Map<string, TaskDefinition>>(PROFILES.map((p) => [p, new Map()]));
  const groups = new Map<string, TaskGroup>();
  const registry: TaskRegistry = {
    register(task, opts = {}) {
      validateTaskDefinition(task);
      for (const p of opts.profiles ?? PROFILES) byProfile.get(p)?.set(task.name, task);
    },
    registerGroup(group) {
      if (!NAME_RE.test(group.name) || !Array.isArray(group.tasks) || group.tasks.length === 0) {
        throw new HippoError("INVALID_CONFIG", "a group needs a name and a non-empty task list", {
          key: group.name,
        });
      }
      groups.set(group.name, group);
    },
    registerEntry(entry) {
      if (entry.kind === "group") {
        registry.registerGroup(entry.group);
        return;
      }
      registry.register(entry.task, { profiles: entry.profiles });
      for (const v of entry.variants)
        registry.register(withVariant(entry.task, v), { profiles: entry.profiles });
    },
    get(name, profile) {
      const task = byProfile.get(profile)?.get(name);
      if (!task) {
        const known = registry.names(profile);
        const near = known.filter((k) => k.includes(name) || name.includes(k)).slice(0, 5);
        const close = closestMatch(name, known);
        if (close && !near.includes(close)) near.unshift(close);
        const hint = near.length > 0 ? ` (did you mean ${near.join(", ")}?)` : "";
        throw new HippoError("NOT_FOUND", `unknown task "${name}" for profile ${profile}${hint}`, {
          key: name,
          expected: `one of ${known.join(", ")}`,
        });
      }
      return task;
    },
    group: (name) => groups.get(name),
    resolve(names, profile) {
      const tasks: TaskDefinition[] = [];
      const usedGroups: TaskGroup[] = [];
      const seen = new Set<string>();
      const add = (name: string, depth: number) => {
        const group = groups.get(name);
        if (group && !byProfile.get(profile)?.has(name)) {
          if (depth > 4) throw new HippoError("INVALID_CONFIG", "groups nested too deeply", { key: name });
          usedGroups.push(group);
          for (const t of group.tasks) add(t, depth + 1);
          return;
        }
        if (seen.has(name)) return;
        seen.add(name);
        tasks.push(registry.get(name, profile));
      };
      for (const n of names) add(n, 0);
      return { tasks, groups: usedGroups };
    },
    names(profile) {
      return [...(byProfile.get(profile)?.keys() ?? []), ...groups.keys()].sort();
    },
  };
  if (options.builtins !== false) for (const entry of readBuiltinTaskFiles()) registry.registerEntry(entry);
  return registry;
}

/** The registry `evaluate` uses unless given another. */
export const defaultRegistry: TaskRegistry = createTaskRegistry();

/** Validate a task and add it to the default registry (both profiles unless `profiles` says otherwise). */
export function defineTask(
  task: TaskDefinition,
  options?: { profiles?: readonly Profile[]; registry?: TaskRegistry },
): TaskDefinition {
  (options?.registry ?? defaultRegistry).register(task, options);
  return task;
}
