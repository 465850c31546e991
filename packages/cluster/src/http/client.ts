/**
 * Client of the head's HTTP API (what `tsray job …`, `tsray status` and `tsray list` use).
 * @module
 */
import { request, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { ConnectionOptions } from 'node:tls';
import { StringDecoder } from 'node:string_decoder';
import type { ActorState, ClusterStatus, JobInfo, NodeInfo, ObjectState, PlacementGroupState, TaskEvent, TaskState } from '../contracts.js';
import type { SubmitJobRequest } from '../jobs/job-manager.js';
import { apiKeyFor } from './api-key.js';
import { ApiUnreachableError, HttpApiError, TlsFingerprintError, TlsVerificationError } from './errors.js';
import { pinnedTlsOptions } from './tls.js';
import { fromJobDetails, type JobDetailsBody } from './wire.js';

/** Options of {@link HttpApiClient}. */
export interface HttpApiClientOptions {
  /** `http://host:port` (loopback) or `https://host:port` of the head's HTTP API. */
  url: string;
  /** Cluster token: the API key is derived from it (`apiKeyFor`); the token itself is never sent. */
  token?: string;
  /** The API key itself (instead of `token`). */
  apiKey?: string;
  /** https: the SHA-256 fingerprint of the head's certificate (self-signed: printed by `tsray start --head`); without it the certificate must verify against the system's CAs. */
  fingerprint?: string;
  /** Per-request timeout for non-streaming calls (default 30000 ms). */
  timeoutMs?: number;
}

/** The state lists served under `/api/v0/`, and the element type of each. */
export interface StateLists {
  nodes: NodeInfo;
  actors: ActorState;
  tasks: TaskState;
  objects: ObjectState;
  placement_groups: PlacementGroupState;
  timeline: TaskEvent;
}

/** Answer of `GET /api/version`. */
export interface VersionInfo {
  version: string;
  tsray_version: string;
  ray_version: string;
}

/** Typed calls to the head's HTTP API. Errors: {@link HttpApiError} (an error status), {@link ApiUnreachableError}. */
export class HttpApiClient {
  /** Base URL without a trailing slash. */
  readonly url: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly fingerprint: string | undefined;
  /** https: the TLS options of every request (the pinned certificate, fetched once). */
  private tls: Promise<ConnectionOptions> | undefined;

  constructor(opts: HttpApiClientOptions) {
    // `https://host:port#sha256=AA:BB:…` (what the GCS tells `tsray status --address HEAD:6380`): the fragment is the pin.
    const pinned = /#sha256=([0-9A-Fa-f:]+)$/.exec(opts.url)?.[1];
    this.url = opts.url.replace(/#.*$/, '').replace(/\/+$/, '');
    const key = opts.apiKey ?? (opts.token !== undefined ? apiKeyFor(opts.token) : undefined);
    if (key === undefined) throw new TypeError('HttpApiClient needs a token or an apiKey');
    this.apiKey = key;
    this.fingerprint = opts.fingerprint ?? pinned;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** TLS options for an https URL: pinned to the fingerprint when one is given, else the system's CAs. */
  private tlsOptions(target: URL): Promise<ConnectionOptions> {
    if (!this.fingerprint) return Promise.resolve({});
    this.tls ??= pinnedTlsOptions(target, this.fingerprint, this.timeoutMs).catch((e: NodeJS.ErrnoException) => {
      this.tls = undefined;
      throw e instanceof TlsFingerprintError ? e : new ApiUnreachableError(this.url, e.code ?? e.message);
    });
    return this.tls;
  }

  private async open(method: string, path: string, body?: unknown, timeout = true): Promise<IncomingMessage> {
    const target = new URL(this.url + path);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const https = target.protocol === 'https:';
    const tls = https ? await this.tlsOptions(target) : {};
    const send = https ? httpsRequest : request;
    return new Promise((resolve, reject) => {
      const req = send(
        target,
        {
          ...(tls as RequestOptions),
          method,
          agent: false,
          headers: {
            authorization: `Bearer ${this.apiKey}`,
            accept: 'application/json',
            ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
          },
          ...(timeout ? { timeout: this.timeoutMs } : {}),
        },
        resolve,
      );
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.timeoutMs} ms`)));
      req.on('error', (e: NodeJS.ErrnoException) => {
        if (e instanceof TlsFingerprintError) return reject(e);
        if (https && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(e.code ?? '')) return reject(new TlsVerificationError(this.url, e.code ?? e.message));
        reject(new ApiUnreachableError(this.url, e.code ?? e.message));
      });
      req.end(payload);
    });
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.open(method, path, body);
    const chunks: Buffer[] = [];
    for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const msg = (parsed as { error?: string } | undefined)?.error ?? (text || res.statusMessage || 'no message');
      throw new HttpApiError(status, method, this.url + path, msg);
    }
    return parsed as T;
  }

  /** `GET /api/version`. */
  version(): Promise<VersionInfo> {
    return this.call('GET', '/api/version');
  }

  /** Submit a job; resolves to its submission id. */
  async submitJob(req: SubmitJobRequest): Promise<string> {
    const r = await this.call<{ submission_id: string }>('POST', '/api/jobs/', {
      entrypoint: req.entrypoint,
      ...(req.submissionId !== undefined ? { submission_id: req.submissionId } : {}),
      ...(req.runtimeEnv !== undefined ? { runtime_env: req.runtimeEnv } : {}),
      ...(req.metadata !== undefined ? { metadata: req.metadata } : {}),
    });
    return r.submission_id;
  }

  /** One job's info. */
  async getJob(id: string): Promise<JobInfo> {
    return fromJobDetails(await this.call<JobDetailsBody>('GET', `/api/jobs/${encodeURIComponent(id)}`));
  }

  /** Every job. */
  async listJobs(): Promise<JobInfo[]> {
    return (await this.call<JobDetailsBody[]>('GET', '/api/jobs/')).map(fromJobDetails);
  }

  /** A job's log so far. */
  async getJobLogs(id: string): Promise<string> {
    return (await this.call<{ logs: string }>('GET', `/api/jobs/${encodeURIComponent(id)}/logs`)).logs;
  }

  /** A job's log from the beginning, as it is written, until the job ends (`GET …/logs?follow=1`). */
  async *tailJobLogs(id: string): AsyncGenerator<string, void, undefined> {
    const path = `/api/jobs/${encodeURIComponent(id)}/logs?follow=1`;
    const res = await this.open('GET', path, undefined, false);
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      for await (const c of res as AsyncIterable<Buffer>) chunks.push(c);
      const text = Buffer.concat(chunks).toString('utf8');
      let msg = text;
      try {
        msg = (JSON.parse(text) as { error?: string }).error ?? text;
      } catch {
        /* plain text */
      }
      throw new HttpApiError(status, 'GET', this.url + path, msg);
    }
    const decoder = new StringDecoder('utf8');
    try {
      for await (const c of res as AsyncIterable<Buffer>) {
        const s = decoder.write(c);
        if (s) yield s;
      }
    } catch (e) {
      throw new ApiUnreachableError(this.url, `the log stream was cut: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    } finally {
      res.destroy();
    }
    const rest = decoder.end();
    if (rest) yield rest;
  }

  /** Stop a job; false if it had already ended. */
  async stopJob(id: string): Promise<boolean> {
    return (await this.call<{ stopped: boolean }>('POST', `/api/jobs/${encodeURIComponent(id)}/stop`)).stopped;
  }

  /** Delete a finished job and its log. */
  async deleteJob(id: string): Promise<boolean> {
    return (await this.call<{ deleted: boolean }>('DELETE', `/api/jobs/${encodeURIComponent(id)}`)).deleted;
  }

  /** Everything `tsray status` shows. */
  clusterStatus(): Promise<ClusterStatus> {
    return this.call('GET', '/api/cluster_status');
  }

  /** A state list (`GET /api/v0/<kind>`). */
  async listState<K extends keyof StateLists>(kind: K): Promise<StateLists[K][]> {
    return (await this.call<{ result: StateLists[K][] }>('GET', `/api/v0/${kind}`)).result;
  }
}
