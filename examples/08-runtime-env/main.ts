/**
 * A runtime environment (Ray's `runtime_env`): the job asks for `emoji` from PyPI and ships ./py as
 * its working directory. The node installs emoji once (uv if available, else pip) into a cached
 * environment that only this job's workers see, starts Python workers in it (cwd = the unpacked
 * working dir, which is also on their import path), and the task uses both.
 *
 * Run: npx tsx examples/08-runtime-env/main.ts
 * (the first run downloads emoji; later runs reuse the cached environment; progress goes to stderr)
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { get, init, isMain, python, shutdown } from '@tsray/core';

if (isMain(import.meta)) {
  const here = dirname(fileURLToPath(import.meta.url));
  await init({ runtimeEnv: { pip: ['emoji'], workingDir: join(here, 'py'), envVars: { GREETING: 'tsray says' } } });
  const emojize = python.remote<[string], string>('emoji_task:emojize');
  console.log(await get(emojize.remote('runtime envs work :thumbs_up:')));
  const [cwd, emojiFile] = await get(python.remote<[], [string, string]>('emoji_task:where').remote());
  console.log(`worker cwd: ${cwd}`);
  console.log(`emoji from: ${emojiFile}`);
  await shutdown();
}
