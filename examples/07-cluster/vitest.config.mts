import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: { name: 'example-07-cluster', include: ['*.spec.ts'], environment: 'node', pool: 'forks', testTimeout: 90_000 },
});
