/**
 * Which model scores the next batch. Two sources:
 *
 * - a fixed folder (`MODEL_DIR`, or the Lambda layer at /opt/models): loaded at cold start and
 *   kept for the container's life, exactly as before the registry existed;
 * - the model registry (`models/registry.json`): the current version is loaded at cold start,
 *   and before each batch one `stat` of registry.json tells whether a promote, a rollback or a
 *   shadow change happened. Then the new model is loaded (and verified) while the old one keeps
 *   serving; the swap happens between batches, so a batch is scored by one version only and
 *   every prediction carries the version that scored it. A candidate that fails to load is
 *   logged and the current model keeps serving.
 *
 * Models are leased per batch: a model replaced while a batch still scores with it is released
 * only once that batch is done.
 */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { StageLogger } from './logger';
import { type DigitModel, loadDigitModel, MODEL_CARD_FILE } from './model';
import { readRegistryFile, REGISTRY_FILE, shippedVersion, versionDir } from './model-registry-file';

/** The models for one batch; call `done` when the batch no longer scores. */
export interface ModelLease {
  model: DigitModel;
  /** The candidate in shadow, if any. */
  shadow: DigitModel | undefined;
  done(): void;
}

export interface ModelSource {
  /** Settles when the cold start's model is loaded; rejects with its ModelLoadError. */
  readonly ready: Promise<void>;
  /** The models for the next batch (checks the registry at most once per call). */
  acquire(): Promise<ModelLease>;
}

type Loader = (dir: string) => Promise<DigitModel>;

/** The Lambda layer's mount point. */
export const LAYER_MODEL_DIR = '/opt/models';

/** The repository's models/ folder: the default registry root. */
export const REPO_MODELS_DIR = resolve(__dirname, '..', '..', 'models');

/**
 * The fixed folder the configuration names, or undefined when the registry decides:
 * `MODEL_DIR` when set, else the layer at /opt/models when present.
 */
export function fixedModelDir(modelDir: string | undefined, layerDir = LAYER_MODEL_DIR): string | undefined {
  if (modelDir !== undefined && modelDir !== '') return resolve(modelDir);
  if (existsSync(join(layerDir, MODEL_CARD_FILE))) return layerDir;
  return undefined;
}

/** One model for the container's life. */
export function fixedModelSource(dir: string, load: Loader = loadDigitModel): ModelSource {
  const model = load(dir);
  const ready = model.then(() => undefined);
  ready.catch(() => undefined);
  return {
    ready,
    acquire: async () => ({ model: await model, shadow: undefined, done: () => undefined }),
  };
}

function fileSignature(path: string): string | undefined {
  try {
    const s = statSync(path, { bigint: true });
    return `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
  } catch {
    return undefined;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The registry in `root`, followed between batches. */
export class RegistryModelSource implements ModelSource {
  readonly ready: Promise<void>;
  private model: DigitModel | undefined;
  private shadow: DigitModel | undefined;
  /** registry.json's stat when last read ('' = never read, undefined = absent). */
  private seen: string | undefined = '';
  private refreshing: Promise<void> | undefined;
  private readonly leases = new Map<DigitModel, number>();
  private readonly retired = new Set<DigitModel>();

  constructor(
    readonly root: string,
    private readonly logger?: StageLogger,
    private readonly load: Loader = loadDigitModel,
  ) {
    this.ready = this.coldStart();
    this.ready.catch(() => undefined);
  }

  /** The version serving now (undefined before the cold start completes). */
  get currentVersion(): string | undefined {
    return this.model?.version;
  }

  get shadowVersion(): string | undefined {
    return this.shadow?.version;
  }

  private async coldStart(): Promise<void> {
    this.seen = fileSignature(join(this.root, REGISTRY_FILE));
    let wanted: { current: string | undefined; shadow: string | null };
    try {
      const registry = readRegistryFile(this.root);
      // No registry: the shipped model serves, and the root is loaded below without looking further.
      wanted = registry ? registry : { current: undefined, shadow: null };
    } catch (error: unknown) {
      this.logger?.error('model registry unreadable, serving the shipped model', { error: messageOf(error) });
      wanted = { current: undefined, shadow: null };
    }
    if (wanted.current !== undefined && wanted.current !== shippedVersion(this.root)) {
      try {
        this.model = await this.load(versionDir(this.root, wanted.current));
      } catch (error: unknown) {
        this.logger?.error('registered model failed to load, serving the shipped model', {
          version: wanted.current,
          error: messageOf(error),
        });
      }
    }
    // The shipped model: the registry's current, or the fallback. Its failure fails the cold start.
    this.model ??= await this.load(this.root);
    if (wanted.shadow !== null) await this.loadShadow(wanted.shadow);
  }

  private async loadShadow(version: string): Promise<void> {
    try {
      this.shadow = await this.load(versionDir(this.root, version));
    } catch (error: unknown) {
      this.logger?.error('shadow model failed to load, running without shadow', { version, error: messageOf(error) });
    }
  }

  /** Re-reads registry.json when its stat changed and swaps models that changed. */
  private async refresh(): Promise<void> {
    const signature = fileSignature(join(this.root, REGISTRY_FILE));
    if (signature === this.seen) return;
    let wanted: { current: string | undefined; shadow: string | null };
    try {
      const registry = readRegistryFile(this.root);
      wanted = registry ?? { current: shippedVersion(this.root), shadow: null };
    } catch (error: unknown) {
      // A registry being replaced is renamed into place whole, so this is a damaged file:
      // keep serving and look again when it changes.
      this.seen = signature;
      this.logger?.error('model registry unreadable, keeping the current model', { error: messageOf(error) });
      return;
    }
    this.seen = signature;
    const current = this.model as DigitModel;
    if (wanted.current !== undefined && wanted.current !== current.version) {
      try {
        const next = await this.load(versionDir(this.root, wanted.current));
        this.model = next;
        this.retire(current);
        this.logger?.info('model switched', { from: current.version, to: next.version });
      } catch (error: unknown) {
        this.logger?.error('promoted model failed to load, keeping the current model', {
          current: current.version,
          refused: wanted.current,
          error: messageOf(error),
        });
      }
    }
    const shadow = this.shadow;
    if ((wanted.shadow ?? undefined) !== shadow?.version) {
      this.shadow = undefined;
      if (shadow) this.retire(shadow);
      if (wanted.shadow !== null) await this.loadShadow(wanted.shadow);
      this.logger?.info('shadow changed', { from: shadow?.version ?? null, to: this.shadowVersion ?? null });
    }
  }

  private retire(model: DigitModel): void {
    if ((this.leases.get(model) ?? 0) === 0) void model.release?.().catch(() => undefined);
    else this.retired.add(model);
  }

  private lease(model: DigitModel | undefined): void {
    if (model) this.leases.set(model, (this.leases.get(model) ?? 0) + 1);
  }

  private unlease(model: DigitModel | undefined): void {
    if (!model) return;
    const left = (this.leases.get(model) ?? 1) - 1;
    if (left > 0) {
      this.leases.set(model, left);
      return;
    }
    this.leases.delete(model);
    if (this.retired.delete(model)) void model.release?.().catch(() => undefined);
  }

  async acquire(): Promise<ModelLease> {
    await this.ready;
    // One refresh at a time; concurrent batches wait for it and share its outcome.
    this.refreshing ??= this.refresh().finally(() => {
      this.refreshing = undefined;
    });
    await this.refreshing;
    const model = this.model as DigitModel;
    const shadow = this.shadow;
    this.lease(model);
    this.lease(shadow);
    let released = false;
    return {
      model,
      shadow,
      done: () => {
        if (released) return;
        released = true;
        this.unlease(model);
        this.unlease(shadow);
      },
    };
  }
}

/**
 * The source the configuration asks for: a fixed folder (MODEL_DIR, the layer), else the
 * registry in `modelRoot` (default: the repository's models/).
 */
export function modelSourceFor(
  config: { modelDir: string | undefined; modelRoot: string | undefined },
  logger?: StageLogger,
): ModelSource {
  const fixed = fixedModelDir(config.modelDir);
  if (fixed !== undefined) return fixedModelSource(fixed);
  return new RegistryModelSource(resolve(config.modelRoot ?? REPO_MODELS_DIR), logger);
}
