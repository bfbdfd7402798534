/**
 * npm start's command line: flags and variables go through the functions' configuration schema
 * and the command's own, and a bad combination is a usage error naming the flag.
 */
import { parseOptions, UsageError } from '../../local/cli/options';

const usageError = (argv: string[], env: NodeJS.ProcessEnv = {}): string => {
  try {
    parseOptions(argv, env);
  } catch (error: unknown) {
    if (error instanceof UsageError) return error.message;
    throw error;
  }
  throw new Error(`accepted: ${argv.join(' ')}`);
};

it('leaves the transport to the pipeline unless one is asked for, by flag or variable', () => {
  expect(parseOptions([], {}).transport).toBeUndefined();
  expect(parseOptions(['--transport', 'http'], {}).transport).toBe('http');
  expect(parseOptions([], { LOCAL_TRANSPORT: 'http' }).transport).toBe('http');
  expect(parseOptions(['--endpoint', 'http://127.0.0.1:4567'], {}).transport).toBeUndefined();
});

it('refuses the direct transport with an external endpoint, and an unknown transport, naming the flag', () => {
  expect(usageError(['--endpoint', 'http://127.0.0.1:4567', '--transport', 'direct'])).toContain('--transport direct');
  expect(usageError(['--transport', 'pigeon'])).toContain('--transport');
});

it('checks the functions settings through their own schema, naming the flag and the value', () => {
  const message = usageError(['--confidence', '2']);
  expect(message).toContain('--confidence');
  expect(message).toContain('"2"');
});
