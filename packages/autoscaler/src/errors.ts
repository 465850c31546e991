/**
 * Errors of the cluster launcher and autoscaler. Each says what was wrong and where: the config field
 * and line, the host that could not be reached, the node that failed to start.
 * @module
 */
import { TsrayError } from '@tsray/core';

/** A cluster config that does not validate: every problem with its field path and line. */
export class ClusterConfigError extends TsrayError {
  override name = 'ClusterConfigError';
  /**
   * @param file the config file (or `<string>`).
   * @param problems one entry per problem: the dotted field path, the 1-based line (0 unknown) and what is wrong.
   */
  constructor(
    readonly file: string,
    readonly problems: { field: string; line: number; message: string }[],
  ) {
    super(
      `invalid cluster config ${file}:\n${problems.map((p) => `  ${p.field || '(top level)'}${p.line ? ` (line ${p.line})` : ''}: ${p.message}`).join('\n')}`,
    );
  }
}

/** A host of the config that cannot be reached (SSH, or the head's address). Nothing was started. */
export class HostUnreachableError extends TsrayError {
  override name = 'HostUnreachableError';
  constructor(
    readonly host: string,
    detail: string,
  ) {
    super(`host ${host} is unreachable: ${detail}`);
  }
}

/** A node (head or worker) the provider could not start; its output is in the message. */
export class NodeLaunchError extends TsrayError {
  override name = 'NodeLaunchError';
  constructor(
    readonly nodeType: string,
    readonly where: string,
    detail: string,
  ) {
    super(`could not start a ${nodeType} node on ${where}: ${detail}`);
  }
}

/** The cluster of a config is not running (`tsray attach/exec/submit` before `tsray up`). */
export class ClusterNotRunningError extends TsrayError {
  override name = 'ClusterNotRunningError';
}
