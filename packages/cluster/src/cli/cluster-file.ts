/**
 * `tsray up|down|attach|exec|submit CLUSTER.yaml …`: argument parsing here, the work in
 * @tsray/autoscaler (config schema, providers, the head's autoscaler).
 * @module
 */
import { fileURLToPath } from 'node:url';
import { clusterAttach, clusterDown, clusterExec, clusterSubmit, clusterUp, sh } from '@tsray/autoscaler';
import { CliUsageError } from './errors.js';
import type { CliIo } from './io.js';

/** This CLI as a command line for sh (what the local provider runs to start nodes). */
function tsrayCommand(): string {
  return [process.execPath, fileURLToPath(new URL('../cli.js', import.meta.url))].map(sh).join(' ');
}

/** Run one of the cluster-file commands; resolves to the exit code. */
export async function cmdCluster(cmd: 'up' | 'down' | 'attach' | 'exec' | 'submit', args: string[], io: CliIo): Promise<number> {
  const [file, ...rest] = args;
  if (!file || file.startsWith('-')) throw new CliUsageError(`tsray ${cmd} needs the cluster config file: tsray ${cmd} CLUSTER.yaml`);
  const opts = { tsray: tsrayCommand() };
  switch (cmd) {
    case 'up':
    case 'down':
    case 'attach':
      if (rest.length) throw new CliUsageError(`tsray ${cmd} takes only the cluster config file; got ${rest.join(' ')}`);
      return cmd === 'up' ? clusterUp(file, io, opts) : cmd === 'down' ? clusterDown(file, io, opts) : clusterAttach(file);
    case 'exec': {
      const words = rest[0] === '--' ? rest.slice(1) : rest;
      if (words.length === 0) throw new CliUsageError('tsray exec needs a command: tsray exec CLUSTER.yaml -- CMD...');
      return clusterExec(file, words.length === 1 ? words[0]! : words.map(sh).join(' '), io);
    }
    case 'submit': {
      const [script, ...scriptArgs] = rest;
      if (!script) throw new CliUsageError('tsray submit needs a script: tsray submit CLUSTER.yaml SCRIPT [ARGS...]');
      return clusterSubmit(file, script, scriptArgs, io);
    }
  }
}
