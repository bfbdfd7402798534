/**
 * Three tiers, one folder each, so a suite's folder tells its tier:
 * - unit: pure modules in one process, no emulator, no child processes (`npm run test:unit`);
 * - integration: the Kinesis emulator, child processes, whole pipelines (`npm run test:integration`);
 * - browser: the home page in Chromium against a real `npm start` (`npm run test:browser`).
 * `npm test` runs all three. TEST_TIERS (comma-separated) picks tiers, as the scripts do; not
 * `--selectProjects`, whose list would swallow the suite paths given after it.
 */
const shared = {
  testEnvironment: '<rootDir>/test/helpers/jest-environment.js',
  testMatch: ['**/*.test.ts'],
  transform: {
    // middy 6 ships ESM only; ts-jest turns it (and our TS) into CommonJS.
    '^.+\\.[tj]s$': ['ts-jest', { tsconfig: { allowJs: true, isolatedModules: true } }],
  },
  transformIgnorePatterns: ['node_modules/(?!@middy/)'],
};

const tiers = ['unit', 'integration', 'browser'];
const selected = process.env.TEST_TIERS ? process.env.TEST_TIERS.split(',') : tiers;
const unknown = selected.filter((tier) => !tiers.includes(tier));
if (unknown.length > 0) throw new Error(`TEST_TIERS: unknown tier ${unknown.join(', ')} (the tiers: ${tiers.join(', ')})`);

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 60000,
  projects: tiers
    .filter((tier) => selected.includes(tier))
    .map((tier) => ({ ...shared, displayName: tier, roots: [`<rootDir>/test/${tier}`] })),
};
