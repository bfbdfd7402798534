/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: '<rootDir>/test/helpers/jest-environment.js',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    // middy 6 ships ESM only; ts-jest turns it (and our TS) into CommonJS.
    '^.+\\.[tj]s$': ['ts-jest', { tsconfig: { allowJs: true, isolatedModules: true } }],
  },
  transformIgnorePatterns: ['node_modules/(?!@middy/)'],
  testTimeout: 60000,
};
