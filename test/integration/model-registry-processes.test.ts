/**
 * The model registry across processes: `npm run promote` as a child process (list, promote,
 * refuse with the reason, roll back), and a lock left by a process that died mid-change.
 */
import { spawn } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promote, readRegistry } from '../../training/model-registry';
import { registryWithCandidates } from '../helpers/model-registry-fixtures';

let root: string;

beforeEach(() => {
  root = registryWithCandidates();
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('the registry lock', () => {
  it('takes over a lock left by a process that died mid-change', async () => {
    // Prepare: a lock naming a process that has exited.
    const child = spawn(process.execPath, ['-e', '']);
    const pid = child.pid as number;
    await new Promise((resolve) => child.on('exit', resolve));
    writeFileSync(join(root, 'registry.json.lock'), `${pid}\n`);
    // Act
    await promote('1.1.0', root);
    // Assert
    expect(readRegistry(root).current).toBe('1.1.0');
    expect(existsSync(join(root, 'registry.json.lock'))).toBe(false);
  });
});

describe('npm run promote', () => {
  const cli = (args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const tsx = join(__dirname, '..', '..', 'node_modules', '.bin', 'tsx');
      const child = spawn(tsx, [join(__dirname, '..', '..', 'training', 'promote.ts'), ...args, '--root', root]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  it('lists, promotes, refuses with the reason and exit code 1, and rolls back', async () => {
    const list = await cli(['--list']);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^version\s+state\s+gates/);
    expect(list.stdout).toMatch(/1\.3\.0\s+candidate\s+gates FAILED: held_out_better/);
    const refused = await cli(['1.3.0']);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toBe(
      'model 1.3.0 refused: gates not passed: held_out_better (0.700 <= parent 0.800)\nnothing changed: the current model keeps serving\n',
    );
    expect(await cli(['1.1.0'])).toMatchObject({
      code: 0,
      stdout: 'promoted 1.1.0 (was 1.0.0); a running edge switches at its next batch\n',
    });
    expect(await cli(['--rollback'])).toMatchObject({
      code: 0,
      stdout: 'rolled back to 1.0.0 (was 1.1.0); a running edge switches at its next batch\n',
    });
    expect((await cli(['--shadow'])).code).toBe(2);
  }, 180_000);
});
