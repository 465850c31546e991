import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Regenerates src/generated from the .proto before the tests when it is missing or stale (no-op otherwise). */
export default function setup(): void {
  const script = fileURLToPath(new URL('../scripts/generate.mjs', import.meta.url));
  execFileSync(process.execPath, [script], { stdio: 'inherit' });
}
