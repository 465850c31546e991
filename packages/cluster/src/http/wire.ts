/**
 * JSON shapes of the jobs HTTP API. They follow Ray's Jobs REST API (snake_case), so clients written for
 * Ray's `JobSubmissionClient` REST calls read them too.
 * @module
 */
import type { JobInfo, JobStatus } from '../contracts.js';

/** Body of `POST /api/jobs/` (as Ray's `JobSubmitRequest`; Ray's `entrypoint_num_cpus` & co. are accepted and ignored). */
export interface JobSubmitRequestBody {
  entrypoint: string;
  submission_id?: string;
  runtime_env?: Record<string, unknown>;
  metadata?: Record<string, string>;
}

/** Answer of `POST /api/jobs/`. */
export interface JobSubmitResponseBody {
  job_id: string;
  submission_id: string;
}

/** One job as `GET /api/jobs/` and `GET /api/jobs/{id}` return it (as Ray's `JobDetails`). */
export interface JobDetailsBody {
  type: 'SUBMISSION';
  job_id: string;
  submission_id: string;
  entrypoint: string;
  status: JobStatus;
  message: string;
  /** ms since epoch (as Ray). */
  start_time: number | null;
  end_time: number | null;
  metadata: Record<string, string>;
  runtime_env: Record<string, unknown> | null;
  driver_exit_code: number | null;
  driver_pid: number | null;
}

/** {@link JobInfo} → wire. */
export function toJobDetails(j: JobInfo): JobDetailsBody {
  return {
    type: 'SUBMISSION',
    job_id: j.submissionId,
    submission_id: j.submissionId,
    entrypoint: j.entrypoint,
    status: j.status,
    message: j.message,
    start_time: j.startTime ?? null,
    end_time: j.endTime ?? null,
    metadata: j.metadata,
    runtime_env: j.runtimeEnv ?? null,
    driver_exit_code: j.exitCode ?? null,
    driver_pid: j.driverPid ?? null,
  };
}

/** Wire → {@link JobInfo}. */
export function fromJobDetails(d: JobDetailsBody): JobInfo {
  return {
    submissionId: d.submission_id,
    entrypoint: d.entrypoint,
    status: d.status,
    message: d.message,
    ...(d.start_time != null ? { startTime: d.start_time } : {}),
    ...(d.end_time != null ? { endTime: d.end_time } : {}),
    exitCode: d.driver_exit_code,
    metadata: d.metadata ?? {},
    ...(d.runtime_env ? { runtimeEnv: d.runtime_env } : {}),
    ...(d.driver_pid != null ? { driverPid: d.driver_pid } : {}),
  };
}
