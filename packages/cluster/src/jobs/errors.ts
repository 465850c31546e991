/**
 * Errors of the job manager. Each says what happened and where to look.
 * @module
 */
import { ClusterError } from '../errors.js';

/** No job with this submission id is known to the head (it never existed, or it was deleted). */
export class JobNotFoundError extends ClusterError {
  constructor(readonly submissionId: string) {
    super(`job '${submissionId}' does not exist on this head (list the jobs with: tsray job list)`);
  }
}

/** A job was submitted with a submission id that is already taken. */
export class JobExistsError extends ClusterError {
  constructor(readonly submissionId: string) {
    super(`a job with submission id '${submissionId}' already exists; pick another id or leave it out to get a generated one`);
  }
}

/** A job that is still PENDING or RUNNING was asked to be deleted. */
export class JobNotTerminalError extends ClusterError {
  constructor(
    readonly submissionId: string,
    readonly status: string,
  ) {
    super(`job '${submissionId}' is ${status}; only finished jobs can be deleted (stop it first: tsray job stop ${submissionId})`);
  }
}

/** A job submission is malformed (missing entrypoint, bad id, non-string metadata…). `field` names the culprit. */
export class JobRequestError extends ClusterError {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}
