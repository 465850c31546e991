import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: { name: 'example-06-multi-instance', include: ['*.spec.ts'], environment: 'node', pool: 'forks', testTimeout: 420_000 },
});
