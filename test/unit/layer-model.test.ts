import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildLayer, layerSpecs, shippedModelFolder } from '../../layers/build';
import { promote, rollback } from '../../training/model-registry';
import { addCandidate, modelsRoot } from '../helpers/model-registry-fixtures';

describe('the model layer follows the registry', () => {
  let repo: string;
  beforeEach(() => {
    repo = mkdtempSync(join(tmpdir(), 'layer-repo-'));
    const models = modelsRoot('1.0.0');
    renameSync(models, join(repo, 'models'));
    addCandidate(join(repo, 'models'), '1.1.0');
  });
  afterEach(() => rmSync(repo, { recursive: true, force: true }));

  const built = () => {
    const spec = layerSpecs(repo, 'x64').find((s) => s.name === 'model');
    if (!spec) throw new Error('no model layer recipe');
    buildLayer(repo, spec, 'x64');
    return JSON.parse(readFileSync(join(spec.outDir, 'models', 'model-card.json'), 'utf8')) as { version: string };
  };

  it('ships the shipped model without a registry, the current version after a promote, the parent after a rollback', async () => {
    expect(shippedModelFolder(repo)).toBe('models');
    expect(built().version).toBe('1.0.0');
    await promote('1.1.0', join(repo, 'models'));
    expect(shippedModelFolder(repo)).toBe('models/candidates/1.1.0');
    expect(built().version).toBe('1.1.0');
    // The layer holds the model alone: no registry, so on Lambda /opt/models is the model.
    expect(existsSync(join(repo, 'layers', 'model', 'build', 'models', 'registry.json'))).toBe(false);
    await rollback(join(repo, 'models'));
    expect(built().version).toBe('1.0.0');
  });
});
