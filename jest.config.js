/** Jest runs TypeScript through ts-jest. jose 6 is ESM-only, so it is transformed too. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test', '<rootDir>/protocols', '<rootDir>/src'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.[tj]s$': ['ts-jest', { tsconfig: { allowJs: true, module: 'commonjs', esModuleInterop: true, strict: true, types: ['node', 'jest'] }, diagnostics: { warnOnly: false } }],
  },
  transformIgnorePatterns: ['/node_modules/(?!jose/)'],
  testTimeout: 60000,
  // Builds dist/ for the CLI tests, which run the real bin/tokengate.js.
  globalSetup: '<rootDir>/test/globalSetup.ts',
};
