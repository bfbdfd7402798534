/** `npm start --camera-rules` refuses bad rules before it starts anything (a child process). */
import { spawn } from 'node:child_process';
import { join } from 'node:path';

describe('npm start --camera-rules', () => {
  it('refuses bad rules as a usage error before starting anything', async () => {
    const tsx = join(__dirname, '..', '..', 'node_modules', '.bin', 'tsx');
    const cli = join(__dirname, '..', '..', 'local', 'cli', 'main.ts');
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(tsx, [cli, '--count', '1', '--port', '0', '--camera-rules', '{"Dock-*": {"sampleRat": 0.5}}']);
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('close', (exit) => resolve({ code: exit, stderr }));
    });
    expect(code).toBe(2);
    expect(stderr).toMatch(/^--camera-rules: expected \{"<camera glob>".*Dock-\*: Unrecognized key: "sampleRat"/);
  }, 60_000);
});
