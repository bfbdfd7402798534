import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadDigitModel } from '../../functions/lib/model';
import { RegistryModelSource } from '../../functions/lib/model-source';
import {
  CorruptModelError,
  currentModelDir,
  GatesNotPassedError,
  listModels,
  ModelRegistryError,
  NothingToRollBackError,
  promote,
  readRegistry,
  RegistryUnreadableError,
  rollback,
  shadow,
  shadowModelDir,
  UnknownModelVersionError,
} from '../../training/model-registry';
import { corrupt, mismatched, registryWithCandidates } from '../helpers/model-registry-fixtures';

let root: string;

beforeEach(() => {
  root = registryWithCandidates();
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

const registryBytes = () => (existsSync(join(root, 'registry.json')) ? readFileSync(join(root, 'registry.json'), 'utf8') : null);

async function refusal(action: () => Promise<unknown>): Promise<Error> {
  const before = registryBytes();
  try {
    await action();
  } catch (error: unknown) {
    expect(registryBytes()).toBe(before);
    if (error instanceof Error) return error;
  }
  throw new Error('the action was not refused');
}

describe('model registry', () => {
  it('lists the shipped model as current and the candidates with their gates', () => {
    const models = listModels(root);
    expect(models.map((m) => [m.version, m.state])).toEqual([
      ['1.0.0', 'current'],
      ['1.1.0', 'candidate'],
      ['1.2.0', 'candidate'],
      ['1.3.0', 'candidate'],
    ]);
    expect(models[3]?.card?.gates?.passed).toBe(false);
    expect(currentModelDir(root)).toBe(root);
    expect(shadowModelDir(root)).toBeNull();
  });

  it('promotes a candidate that passed its gates, keeping the history, and rolls back one promote at a time', async () => {
    await promote('1.1.0', root);
    expect(currentModelDir(root)).toBe(join(root, 'candidates', '1.1.0'));
    await promote('1.2.0', root);
    expect(readRegistry(root)).toMatchObject({
      current: '1.2.0',
      history: [
        { version: '1.1.0', action: 'promote', from: '1.0.0' },
        { version: '1.2.0', action: 'promote', from: '1.1.0' },
      ],
    });
    expect(listModels(root).map((m) => m.state)).toEqual(['previous', 'previous', 'current', 'candidate']);

    expect((await rollback(root)).version).toBe('1.1.0');
    expect((await rollback(root)).version).toBe('1.0.0');
    expect(currentModelDir(root)).toBe(root);
    const error = await refusal(() => rollback(root));
    expect(error).toBeInstanceOf(NothingToRollBackError);
    expect(error.message).toBe('nothing to roll back to: 1.0.0 is the first version that served');
    expect(readRegistry(root).history.map((e) => `${e.action} ${e.version}`)).toEqual([
      'promote 1.1.0',
      'promote 1.2.0',
      'rollback 1.1.0',
      'rollback 1.0.0',
    ]);
  });

  it('applies changes made at the same moment one after the other, losing neither', async () => {
    // Act: both promotes check their files (asynchronously) before either writes.
    const results = await Promise.all([promote('1.1.0', root), promote('1.2.0', root), shadow('1.1.0', root)]);
    // Assert: every change is in the history, each recorded against what it replaced.
    const { history, current } = readRegistry(root);
    expect(history.map((e) => `${e.action} ${e.version}`).sort()).toEqual(['promote 1.1.0', 'promote 1.2.0', 'shadow 1.1.0']);
    const promotes = history.filter((e) => e.action === 'promote');
    expect(promotes[1]?.from).toBe(promotes[0]?.version);
    expect(current).toBe(promotes[1]?.version);
    expect(results.map((r) => r.action).sort()).toEqual(['promote', 'promote', 'shadow']);
    expect(existsSync(join(root, 'registry.json.lock'))).toBe(false);
  });

  it('refuses a candidate whose gates failed, naming the failed check', async () => {
    const error = await refusal(() => promote('1.3.0', root));
    expect(error).toBeInstanceOf(GatesNotPassedError);
    expect(error.message).toBe('model 1.3.0 refused: gates not passed: held_out_better (0.700 <= parent 0.800)');
  });

  it('refuses corrupt and mismatched files as the edge would load them', async () => {
    corrupt(join(root, 'candidates', '1.2.0'));
    const damaged = await refusal(() => promote('1.2.0', root));
    expect(damaged).toBeInstanceOf(CorruptModelError);
    expect(damaged.message).toMatch(/^model 1\.2\.0 refused: .*digits\.onnx: corrupt or altered: \d+ bytes with sha256/);

    mismatched(root, '1.4.0', '1.1.0');
    const wrongFolder = await refusal(() => promote('1.4.0', root));
    expect(wrongFolder).toBeInstanceOf(CorruptModelError);
    expect(wrongFolder.message).toMatch(
      /model 1\.4\.0 refused: its folder .*1\.4\.0 holds a card for version 1\.1\.0 \(mismatched files\)/,
    );

    expect(await refusal(() => shadow('1.2.0', root))).toBeInstanceOf(CorruptModelError);
  });

  it('names unknown versions, what is already current, and a damaged registry', async () => {
    const unknown = await refusal(() => promote('7.0.0', root));
    expect(unknown).toBeInstanceOf(UnknownModelVersionError);
    expect(unknown.message).toMatch(/no model version "7\.0\.0" in .* \(known: 1\.0\.0, 1\.1\.0, 1\.2\.0, 1\.3\.0\)/);
    expect((await refusal(() => promote('1.0.0', root))).message).toBe('model 1.0.0 is already current: nothing to promote');

    writeFileSync(join(root, 'registry.json'), '{"current": "1.1.0", "shad');
    const damaged = await refusal(() => promote('1.1.0', root));
    expect(damaged).toBeInstanceOf(RegistryUnreadableError);
    expect(damaged.message).toMatch(/registry\.json: not JSON .*fix or delete it/);
  });

  it('runs a candidate in shadow and stops it; promoting the shadowed version ends its shadow', async () => {
    await shadow('1.1.0', root);
    expect(readRegistry(root)).toMatchObject({ current: '1.0.0', shadow: '1.1.0' });
    expect(shadowModelDir(root)).toBe(join(root, 'candidates', '1.1.0'));
    expect(listModels(root).find((m) => m.version === '1.1.0')?.state).toBe('shadow');
    await shadow(null, root);
    expect(readRegistry(root).shadow).toBeNull();
    expect(await refusal(() => shadow(null, root))).toBeInstanceOf(ModelRegistryError);

    await shadow('1.1.0', root);
    await promote('1.1.0', root);
    expect(readRegistry(root)).toMatchObject({ current: '1.1.0', shadow: null });
    expect((await refusal(() => shadow('1.1.0', root))).message).toMatch(/is current/);
  });
});

describe('the edge following the registry', () => {
  const messages: string[] = [];
  const logger = {
    info: (m: string) => messages.push(`info ${m}`),
    warn: (m: string) => messages.push(`warn ${m}`),
    error: (m: string, extra?: Record<string, unknown>) => messages.push(`error ${m} ${JSON.stringify(extra)}`),
  };
  beforeEach(() => messages.splice(0));

  it('swaps between batches, frees a replaced model after its last batch, and keeps serving past a bad promote', async () => {
    const source = new RegistryModelSource(root, logger);
    await source.ready;
    const first = await source.acquire();
    expect(first.model.version).toBe('1.0.0');
    expect(first.shadow).toBeUndefined();

    await promote('1.1.0', root);
    await shadow('1.2.0', root);
    const second = await source.acquire();
    expect([second.model.version, second.shadow?.version]).toEqual(['1.1.0', '1.2.0']);
    // The first batch still holds 1.0.0: it scores until it is done.
    expect(await first.model.scoreBatch([new Uint8Array(784)])).toHaveLength(1);
    first.done();
    await expect(first.model.scoreBatch([new Uint8Array(784)])).rejects.toThrow();
    second.done();

    // A registry edited to point at a damaged model: logged, the current one keeps serving.
    corrupt(join(root, 'candidates', '1.3.0'));
    writeFileSync(join(root, 'registry.json'), JSON.stringify({ ...readRegistry(root), current: '1.3.0' }));
    const third = await source.acquire();
    expect(third.model.version).toBe('1.1.0');
    third.done();
    expect(
      messages.some((m) =>
        /^error promoted model failed to load, keeping the current model .*1\.3\.0.*corrupt or altered/.test(m),
      ),
    ).toBe(true);
  });

  it('starts on the registered version, and on the shipped one when that cannot load', async () => {
    await promote('1.1.0', root);
    const started = new RegistryModelSource(root, logger);
    expect((await started.acquire()).model.version).toBe('1.1.0');
    corrupt(join(root, 'candidates', '1.1.0'));
    const fallback = new RegistryModelSource(root, logger);
    expect((await fallback.acquire()).model.version).toBe('1.0.0');
    expect(messages.some((m) => m.startsWith('error registered model failed to load, serving the shipped model'))).toBe(true);
    // The shipped model itself is what a plain load of the root gives.
    expect((await loadDigitModel(root)).version).toBe('1.0.0');
  });
});
