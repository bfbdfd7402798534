/**
 * The model registry: which model version serves at the edge, which runs in shadow, and the
 * history of changes. Pure functions over a models folder, for `npm run promote` and the home
 * page's buttons alike: they throw named errors with a sentence a person can act on, and never
 * exit the process.
 *
 *   <root>/                        the shipped model (tracked in git, never overwritten)
 *   <root>/candidates/<version>/   candidates written by `npm run retrain`
 *   <root>/registry.json           { current, shadow, history } (functions/lib/model-registry-file.ts)
 *
 * A running edge re-reads registry.json between batches (a stat per batch), so writing it is
 * the rollout: it is written whole to a temporary file, fsynced and renamed into place, so a
 * reader sees the old registry or the new one, never half of one.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { sleep } from '../functions/lib/retry';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { loadDigitModel, MODEL_CARD_FILE, type ModelCard, modelCardSchema } from '../functions/lib/model';
import {
  CANDIDATES_DIR,
  type Registry,
  type RegistryAction,
  readRegistryFile,
  REGISTRY_FILE,
  RegistryFileError,
  shippedVersion,
  versionDir,
} from '../functions/lib/model-registry-file';

export { REGISTRY_FILE };

/** Where a version stands. */
export type ModelState = 'current' | 'shadow' | 'candidate' | 'previous' | 'shipped';

/** The gate results a candidate's card carries (written by `npm run retrain`). */
export const gatesSchema = z.looseObject({
  passed: z.boolean(),
  checks: z.array(
    z.looseObject({
      name: z.string(),
      passed: z.boolean(),
      value: z.unknown().optional(),
      limit: z.unknown().optional(),
      detail: z.string().optional(),
    }),
  ),
});
export type Gates = z.infer<typeof gatesSchema>;

/** A card with the sections the registry reads. */
export type RegistryCard = ModelCard & { gates?: Gates; parent?: { version: string; sha256?: string } };

export interface ModelEntry {
  version: string;
  dir: string;
  /** The card as read; undefined when it is missing or malformed (`problem` says why). */
  card: RegistryCard | undefined;
  state: ModelState;
  /** Why the folder cannot be used, when its card cannot be read. */
  problem?: string;
}

/** Every registry failure; the subclasses name the case. */
export class ModelRegistryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelRegistryError';
  }
}
export class UnknownModelVersionError extends ModelRegistryError {
  constructor(message: string) {
    super(message);
    this.name = 'UnknownModelVersionError';
  }
}
export class GatesNotPassedError extends ModelRegistryError {
  constructor(message: string) {
    super(message);
    this.name = 'GatesNotPassedError';
  }
}
export class CorruptModelError extends ModelRegistryError {
  constructor(message: string) {
    super(message);
    this.name = 'CorruptModelError';
  }
}
export class NothingToRollBackError extends ModelRegistryError {
  constructor(message: string) {
    super(message);
    this.name = 'NothingToRollBackError';
  }
}
export class RegistryUnreadableError extends ModelRegistryError {
  constructor(message: string) {
    super(message);
    this.name = 'RegistryUnreadableError';
  }
}

/** The default root: the repository's models/ folder. */
export const DEFAULT_MODELS_ROOT = resolve(__dirname, '..', 'models');

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function readCard(dir: string): { card?: RegistryCard; problem?: string } {
  const path = join(dir, MODEL_CARD_FILE);
  if (!existsSync(path)) return { problem: `${path}: model card missing` };
  try {
    const parsed = modelCardSchema.safeParse(JSON.parse(readFileSync(path, 'utf8')));
    if (!parsed.success) return { problem: `${path}: ${z.prettifyError(parsed.error).replace(/\n/g, ' ')}` };
    const card = parsed.data as RegistryCard;
    const gates = gatesSchema.safeParse((parsed.data as Record<string, unknown>).gates);
    return { card: { ...card, gates: gates.success ? gates.data : undefined } };
  } catch (error: unknown) {
    return { problem: `${path}: unreadable (${messageOf(error)})` };
  }
}

/** The registry, or the implicit one (the shipped model current) when there is no file. */
function registryOf(root: string): Registry {
  let registry: Registry | undefined;
  try {
    registry = readRegistryFile(root);
  } catch (error: unknown) {
    if (error instanceof RegistryFileError) {
      throw new RegistryUnreadableError(`${error.message}: fix or delete it (deleting it returns the edge to the shipped model)`);
    }
    throw error;
  }
  if (registry) return registry;
  const shipped = shippedVersion(root);
  if (shipped === undefined)
    throw new UnknownModelVersionError(`${join(root, MODEL_CARD_FILE)} is missing or unreadable: no shipped model`);
  return { current: shipped, shadow: null, history: [] };
}

/** The stack of versions that have been current, oldest first: promotes push, rollbacks pop. */
function currentStack(root: string, registry: Registry): string[] {
  const stack = [shippedVersion(root) ?? registry.current];
  for (const entry of registry.history) {
    if (entry.action === 'promote') stack.push(entry.version);
    else if (entry.action === 'rollback' && stack.length > 1) stack.pop();
  }
  // A registry edited by hand may disagree with its history: what serves is what counts.
  if (stack.at(-1) !== registry.current) stack.push(registry.current);
  return stack;
}

/**
 * Every model version in `root`: the shipped model and each folder under candidates/, with its
 * card and its state (current, shadow, previous = was current before, shipped, candidate).
 *
 * @throws RegistryUnreadableError when registry.json exists but is damaged.
 */
export function listModels(root: string = DEFAULT_MODELS_ROOT): ModelEntry[] {
  const registry = registryOf(root);
  const everCurrent = new Set(
    registry.history.flatMap((e) => (e.action === 'promote' || e.action === 'rollback' ? [e.version, e.from ?? ''] : [])),
  );
  const shipped = shippedVersion(root);
  const stateOf = (version: string): ModelState => {
    if (version === registry.current) return 'current';
    if (version === registry.shadow) return 'shadow';
    if (everCurrent.has(version)) return 'previous';
    if (version === shipped) return 'shipped';
    return 'candidate';
  };
  const entries: ModelEntry[] = [];
  const shippedCard = readCard(root);
  if (shippedCard.card)
    entries.push({
      version: shippedCard.card.version,
      dir: root,
      card: shippedCard.card,
      state: stateOf(shippedCard.card.version),
    });
  const candidates = join(root, CANDIDATES_DIR);
  if (existsSync(candidates)) {
    // Dot folders are not versions: retrain writes a candidate under `.<version>.partial-<pid>` first.
    for (const name of readdirSync(candidates, { withFileTypes: true })
      .filter((d) => d.isDirectory() && !d.name.startsWith('.'))
      .map((d) => d.name)
      .sort(compareVersions)) {
      const dir = join(candidates, name);
      const { card, problem } = readCard(dir);
      entries.push({ version: name, dir, card, state: stateOf(name), ...(problem ? { problem } : {}) });
    }
  }
  return entries;
}

/** Orders "1.10.0" after "1.9.0": numeric parts numerically. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.+_-]/);
  const pb = b.split(/[.+_-]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    const nx = Number(x);
    const ny = Number(y);
    const diff = Number.isInteger(nx) && Number.isInteger(ny) && x !== '' && y !== '' ? nx - ny : x < y ? -1 : x > y ? 1 : 0;
    if (diff !== 0) return diff;
  }
  return 0;
}

function entryOf(root: string, version: string): ModelEntry {
  const entries = listModels(root);
  const entry = entries.find((e) => e.version === version);
  if (!entry) {
    throw new UnknownModelVersionError(
      `no model version "${version}" in ${root} (known: ${entries.map((e) => e.version).join(', ') || 'none'})`,
    );
  }
  return entry;
}

/**
 * Loads the version's files exactly as the edge will (loadDigitModel: card, size, sha256,
 * version in the file, signature, a trial batch) and checks that its folder is named after
 * the version its card states.
 */
async function verifyFiles(entry: ModelEntry): Promise<void> {
  if (!entry.card) throw new CorruptModelError(`model ${entry.version} refused: ${entry.problem ?? 'no card'}`);
  if (entry.card.version !== entry.version) {
    throw new CorruptModelError(
      `model ${entry.version} refused: its folder ${entry.dir} holds a card for version ${entry.card.version} (mismatched files)`,
    );
  }
  try {
    const model = await loadDigitModel(entry.dir);
    await model.release?.();
  } catch (error: unknown) {
    throw new CorruptModelError(`model ${entry.version} refused: ${messageOf(error)}`);
  }
}

/** Writes registry.json whole: temporary file, fsync, rename, fsync of the folder. */
function writeRegistry(root: string, registry: Registry): void {
  const path = join(root, REGISTRY_FILE);
  const temporary = `${path}.${process.pid}.tmp`;
  const fd = openSync(temporary, 'w');
  try {
    writeSync(fd, `${JSON.stringify(registry, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);
  const dirFd = openSync(root, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/** How long a registry change waits for another process's change to finish. */
const REGISTRY_LOCK_WAIT_MS = 10_000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error: unknown) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Applies `change` to the registry as it is on disk at that moment, under an exclusive lock
 * file, so two changes at once (a button on the page and `npm run promote`) are applied one
 * after the other and neither history entry is lost. A lock left by a process that died is
 * taken over; one held longer than {@link REGISTRY_LOCK_WAIT_MS} by a live process is an error.
 */
async function changeRegistry(root: string, change: (registry: Registry) => RegistryChange): Promise<RegistryChange> {
  const lock = join(root, `${REGISTRY_FILE}.lock`);
  const deadline = Date.now() + REGISTRY_LOCK_WAIT_MS;
  for (;;) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (error: unknown) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder: number;
    try {
      holder = Number.parseInt(readFileSync(lock, 'utf8'), 10);
    } catch {
      continue; // released in the meantime
    }
    // An empty lock is one being written this instant: waited for like a live one.
    if (holder > 0 && !processAlive(holder)) {
      rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline)
      throw new ModelRegistryError(`another change to the model registry is in progress (${lock} held by process ${holder})`);
    await sleep(20);
  }
  try {
    const result = change(registryOf(root));
    writeRegistry(root, result.registry);
    return result;
  } finally {
    rmSync(lock, { force: true });
  }
}

function withEntry(
  registry: Registry,
  change: Partial<Pick<Registry, 'current' | 'shadow'>>,
  version: string,
  action: RegistryAction,
  from: string | null,
): Registry {
  return {
    current: change.current ?? registry.current,
    shadow: change.shadow === undefined ? registry.shadow : change.shadow,
    history: [...registry.history, { version, action, at: new Date().toISOString(), from }],
  };
}

/** The outcome of a registry change, for printing. */
export interface RegistryChange {
  action: RegistryAction;
  version: string;
  from: string | null;
  registry: Registry;
}

/**
 * Makes `version` current: the edge switches to it at its next batch. The version must pass
 * its gates (the card's `gates.passed`; a version that was current before, or the shipped
 * model, has served already and needs none) and its files must load as the edge loads them.
 * A version in shadow leaves shadow as it is promoted. Nothing changes when a check fails.
 *
 * @throws UnknownModelVersionError, GatesNotPassedError, CorruptModelError,
 *   ModelRegistryError (already current), RegistryUnreadableError.
 */
export async function promote(version: string, root: string = DEFAULT_MODELS_ROOT): Promise<RegistryChange> {
  const registry = registryOf(root);
  const entry = entryOf(root, version);
  if (registry.current === version) throw new ModelRegistryError(`model ${version} is already current: nothing to promote`);
  const servedBefore = entry.state === 'previous' || entry.dir === root;
  if (!servedBefore) {
    const gates = entry.card?.gates;
    if (!gates)
      throw new GatesNotPassedError(
        `model ${version} refused: its card has no gate results (run npm run retrain, which checks them)`,
      );
    if (!gates.passed) {
      const failed = gates.checks.filter((c) => !c.passed).map((c) => `${c.name}${c.detail ? ` (${c.detail})` : ''}`);
      throw new GatesNotPassedError(`model ${version} refused: gates not passed: ${failed.join('; ') || 'passed is false'}`);
    }
  }
  await verifyFiles(entry);
  return changeRegistry(root, (fresh) => {
    if (fresh.current === version) throw new ModelRegistryError(`model ${version} is already current: nothing to promote`);
    const next = withEntry(
      fresh,
      { current: version, shadow: fresh.shadow === version ? null : fresh.shadow },
      version,
      'promote',
      fresh.current,
    );
    return { action: 'promote', version, from: fresh.current, registry: next };
  });
}

/**
 * Returns to the version that was current before the current one (rollbacks go back one
 * promote at a time). Its files are checked again first.
 *
 * @throws NothingToRollBackError when the current version is the first one, CorruptModelError
 *   when the previous version's files no longer load, RegistryUnreadableError.
 */
export async function rollback(root: string = DEFAULT_MODELS_ROOT): Promise<RegistryChange> {
  const registry = registryOf(root);
  const stack = currentStack(root, registry);
  const target = stack.at(-2);
  if (target === undefined)
    throw new NothingToRollBackError(`nothing to roll back to: ${registry.current} is the first version that served`);
  await verifyFiles(entryOf(root, target));
  return changeRegistry(root, (fresh) => {
    if (currentStack(root, fresh).at(-2) !== target)
      throw new ModelRegistryError(`the registry changed while ${target} was being checked: run the rollback again`);
    const next = withEntry(
      fresh,
      { current: target, shadow: fresh.shadow === target ? null : fresh.shadow },
      target,
      'rollback',
      fresh.current,
    );
    return { action: 'rollback', version: target, from: fresh.current, registry: next };
  });
}

/**
 * Runs `version` in shadow at the edge (every frame also scored by it, outputs unchanged), or
 * stops shadow scoring with null. Gates are not required (shadow scoring is how a candidate is
 * judged on live frames) but its files must load.
 *
 * @throws UnknownModelVersionError, CorruptModelError, ModelRegistryError (the current version,
 *   or nothing in shadow to stop), RegistryUnreadableError.
 */
export async function shadow(version: string | null, root: string = DEFAULT_MODELS_ROOT): Promise<RegistryChange> {
  if (version === null) {
    return changeRegistry(root, (fresh) => {
      if (fresh.shadow === null) throw new ModelRegistryError('no model runs in shadow: nothing to stop');
      const next = withEntry(fresh, { shadow: null }, fresh.shadow, 'unshadow', fresh.shadow);
      return { action: 'unshadow', version: fresh.shadow, from: fresh.shadow, registry: next };
    });
  }
  const entry = entryOf(root, version);
  const notCurrent = (registry: Registry): void => {
    if (registry.current === version)
      throw new ModelRegistryError(`model ${version} is current: shadow a candidate against it instead`);
  };
  notCurrent(registryOf(root));
  await verifyFiles(entry);
  return changeRegistry(root, (fresh) => {
    notCurrent(fresh);
    const next = withEntry(fresh, { shadow: version }, version, 'shadow', fresh.shadow);
    return { action: 'shadow', version, from: fresh.shadow, registry: next };
  });
}

/** The folder of the current version. */
export function currentModelDir(root: string = DEFAULT_MODELS_ROOT): string {
  return versionDir(root, registryOf(root).current);
}

/** The folder of the version in shadow, or null when none. */
export function shadowModelDir(root: string = DEFAULT_MODELS_ROOT): string | null {
  const { shadow: version } = registryOf(root);
  return version === null ? null : versionDir(root, version);
}

/** The registry as it stands (the implicit one when there is no registry.json). */
export function readRegistry(root: string = DEFAULT_MODELS_ROOT): Registry {
  return registryOf(root);
}

/** The version a rollback would return to, or null when the current one is the first that served. */
export function rollbackTarget(root: string = DEFAULT_MODELS_ROOT): string | null {
  const registry = registryOf(root);
  return currentStack(root, registry).at(-2) ?? null;
}
