/**
 * Three tiers, one folder each, so a suite's folder tells its tier:
 * - unit: pure modules in one process, no emulator, no child processes (`npm run test:unit`);
 * - integration: the Kinesis emulator, child processes, whole pipelines (`npm run test:integration`);
 * - browser: the home page in Chromium against a real `npm start` (`npm run test:browser`).
 * `npm test` runs all three.
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

/** @type {import('jest').Config} */
module.exports = {
  testTimeout: 60000,
  projects: [
    { ...shared, displayName: 'unit', roots: ['<rootDir>/test/unit'] },
    { ...shared, displayName: 'integration', roots: ['<rootDir>/test/integration'] },
    { ...shared, displayName: 'browser', roots: ['<rootDir>/test/browser'] },
  ],
};
