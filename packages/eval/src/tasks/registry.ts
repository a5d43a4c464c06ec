/**
 * Task lookup by name and profile. Built-ins are registered per profile where the two harnesses format a
 * task differently (`medmcqa`), and for both profiles otherwise. Users add tasks with `defineTask` (code) or
 * `loadTaskFile` (a JSON task definition, see `taskfile.ts`), into the default registry or their own.
 */
import { HippoError } from "@hippocrates/core";
import {
  MMLU_MEDICAL_SUBJECTS,
  medmcqa,
  medmcqaCurrent,
  medqa4options,
  medqaUsmle,
  medqaUsmle5,
  mmluTask,
  multimedqa,
  pubmedqa,
  pubmedqaTest500,
  usmleStep1,
  usmleStep2,
  usmleStep3,
} from "./builtin.js";
import type { TaskDefinition, TaskGroup } from "./types.js";
import { PROMPT_VARIANTS, withVariant } from "./variants.js";

export type Profile = "v0.3" | "current";
export const PROFILES: readonly Profile[] = ["v0.3", "current"];

export interface TaskRegistry {
  /** Add a task; `profiles` limits where its name resolves (default: both). Replaces a task of the same name. */
  register(task: TaskDefinition, options?: { profiles?: readonly Profile[] }): void;
  registerGroup(group: TaskGroup): void;
  get(name: string, profile: Profile): TaskDefinition;
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
    get(name, profile) {
      const task = byProfile.get(profile)?.get(name);
      if (!task) {
        const known = registry.names(profile);
        const near = known.filter((k) => k.includes(name) || name.includes(k)).slice(0, 5);
        const hint = near.length > 0 ? ` (did you mean ${near.join(", ")}?)` : "";
        throw new HippoError("NOT_FOUND", `unknown task "${name}" for profile ${profile}${hint}`, {
          key: name,
          expected: `one of ${known.join(", ")}`,
        });
      }
      return task;
    },
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
  if (options.builtins !== false) {
    registry.register(medqaUsmle5, { profiles: ["v0.3"] });
    for (const t of [medqaUsmle, medmcqa, usmleStep1, usmleStep2, usmleStep3]) {
      registry.register(t, { profiles: ["v0.3"] });
      for (const v of PROMPT_VARIANTS) registry.register(withVariant(t, v), { profiles: ["v0.3"] });
    }
    for (const v of PROMPT_VARIANTS) registry.register(withVariant(pubmedqa, v), { profiles: ["v0.3"] });
    registry.register(pubmedqa);
    registry.register(pubmedqaTest500);
    registry.register(medmcqaCurrent, { profiles: ["current"] });
    registry.register(medqa4options);
    for (const s of MMLU_MEDICAL_SUBJECTS) registry.register(mmluTask(s));
    registry.registerGroup(multimedqa);
    registry.registerGroup({ name: "mmlu_medical", tasks: MMLU_MEDICAL_SUBJECTS.map((s) => `mmlu_${s}`) });
    registry.registerGroup({
      name: "hippocrates",
      tasks: ["medmcqa", "medqa_usmle", "pubmedqa", "usmle_step1", "usmle_step2", "usmle_step3"],
    });
  }
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
