import { defineConfig } from 'vitest/config';

export default defineConfig({
  root: import.meta.dirname,
  test: { name: 'example-03-python-actor', include: ['*.spec.ts'], environment: 'node', pool: 'forks', testTimeout: 60_000 },
});
