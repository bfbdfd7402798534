/**
 * The model registry's file: which model version serves and which runs in shadow. One place
 * for its format and for where each version's folder is, read by the edge (classify checks it
 * between batches) and written by `training/model-registry.ts` (`npm run promote`).
 *
 *   <root>/                        the shipped model (digits.onnx + model-card.json)
 *   <root>/candidates/<version>/   models written by `npm run retrain`
 *   <root>/registry.json           { current, shadow, history }; absent = the shipped model serves
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { MODEL_CARD_FILE, modelCardSchema } from './model';

export const REGISTRY_FILE = 'registry.json';
export const CANDIDATES_DIR = 'candidates';

/** The version pattern of model cards: also a safe folder name. */
export const versionSchema = modelCardSchema.shape.version;

export const REGISTRY_ACTIONS = ['promote', 'rollback', 'shadow', 'unshadow'] as const;
export type RegistryAction = (typeof REGISTRY_ACTIONS)[number];

export const registryEntrySchema = z.object({
  version: versionSchema,
  action: z.enum(REGISTRY_ACTIONS),
  /** ISO-8601 time of the change. */
  at: z.string(),
  /** The version current (or in shadow, for shadow actions) before the change; null when none. */
  from: versionSchema.nullable(),
});
export type RegistryEntry = z.infer<typeof registryEntrySchema>;

export const registrySchema = z.object({
  current: versionSchema,
  shadow: versionSchema.nullable(),
  history: z.array(registryEntrySchema),
});
export type Registry = z.infer<typeof registrySchema>;

/** registry.json exists but cannot be read as a registry. */
export class RegistryFileError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path}: ${detail}`);
    this.name = 'RegistryFileError';
  }
}

/**
 * The registry in `root`, or undefined when there is no registry.json (the shipped model
 * serves, nothing in shadow).
 *
 * @throws RegistryFileError when the file is unreadable, not JSON or not a registry.
 */
export function readRegistryFile(root: string): Registry | undefined {
  const path = join(root, REGISTRY_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error: unknown) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new RegistryFileError(path, `unreadable (${error instanceof Error ? error.message : String(error)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error: unknown) {
    throw new RegistryFileError(path, `not JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  const parsed = registrySchema.safeParse(json);
  if (!parsed.success) throw new RegistryFileError(path, `not a registry: ${z.prettifyError(parsed.error).replace(/\n/g, ' ')}`);
  return parsed.data;
}

/**
 * The version of the shipped model in `root` (its card's), or undefined when the card is
 * missing or unreadable (loading that folder will say why).
 */
export function shippedVersion(root: string): string | undefined {
  const path = join(root, MODEL_CARD_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const parsed = modelCardSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    return parsed.success ? parsed.data.version : undefined;
  } catch {
    return undefined;
  }
}

/** The folder of `version`: `root` itself for the shipped model, else `root/candidates/<version>`. */
export function versionDir(root: string, version: string): string {
  return version === shippedVersion(root) ? root : join(root, CANDIDATES_DIR, version);
}

/** What serves and what shadows in `root`: the registry's, or the shipped model alone. */
export function registryState(root: string): { current: string | undefined; shadow: string | null } {
  const registry = readRegistryFile(root);
  return registry ? { current: registry.current, shadow: registry.shadow } : { current: shippedVersion(root), shadow: null };
}
