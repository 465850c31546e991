import { defineConfig } from 'vitest/config';

// One project per package (each package has its own vitest.config.mts with test.name).
export default defineConfig({
  test: {
    projects: ['packages/*/vitest.config.mts', 'examples/*/vitest.config.mts'],
  },
});
