import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: {
    name: 'object-store',
    include: ['src/**/*.spec.ts', 'test/**/*.spec.ts'],
    environment: 'node',
    pool: 'forks',
    // `global.gc` lets a test check that a view keeps the mapping alive until it is collected.
    execArgv: ['--expose-gc'],
  },
});
