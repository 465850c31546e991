/**
 * Prometheus metrics of the OpenAI server under vLLM's names and labels (`vllm:*` with `model_name`),
 * so dashboards built for `vllm serve` work unchanged; HTTP requests are counted per route (bounded
 * labels: a raw path would make one series per URL a client invents).
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Load of the served engine(s), summed over ranks: what the gauges report at each scrape. */
export interface LoadSnapshot {
  running: number;
  waiting: number;
  /** KV-cache usage in [0, 1] (mean over ranks). */
  kvCacheUsage: number;
}

/** The server's metrics (one registry per server). */
export interface ServerMetrics {
  readonly registry: Registry;
  /** `http_requests_total{handler, method, status}` and `tsray_requests_total{endpoint, status}`: per route. */
  request(route: string, method: string, status: number): void;
  /** A request has produced its first token after `seconds`. */
  firstToken(seconds: number): void;
  /** Time between two streamed deltas of one request. */
  interToken(seconds: number): void;
  /** A request finished: end-to-end latency, tokens, and why it stopped. */
  finished(o: { seconds: number; promptTokens: number; generationTokens: number; finishedReasons: string[] }): void;
}

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560];

/** Create the metrics of a server for `modelName`; `load()` is read at each scrape for the gauges. */
export function createServerMetrics(modelName: string, load: () => Promise<LoadSnapshot | undefined>): ServerMetrics {
  const registry = new Registry();
  const labels = { model_name: modelName };
  const r = [registry];
  const http = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['handler', 'method', 'status'],
    registers: r,
  });
  const tsrayRequests = new Counter({
    name: 'tsray_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['endpoint', 'status'],
    registers: r,
  });
  const ttft = new Histogram({
    name: 'vllm:time_to_first_token_seconds',
    help: 'Histogram of time to first token in seconds.',
    labelNames: ['model_name'],
    buckets: LATENCY_BUCKETS,
    registers: r,
  });
  const itl = new Histogram({
    name: 'vllm:inter_token_latency_seconds',
    help: 'Histogram of inter-token latency in seconds.',
    labelNames: ['model_name'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5],
    registers: r,
  });
  const e2e = new Histogram({
    name: 'vllm:e2e_request_latency_seconds',
    help: 'Histogram of e2e request latency in seconds.',
    labelNames: ['model_name'],
    buckets: LATENCY_BUCKETS,
    registers: r,
  });
  const success = new Counter({
    name: 'vllm:request_success_total',
    help: 'Count of successfully processed requests.',
    labelNames: ['model_name', 'finished_reason'],
    registers: r,
  });
  const promptTokens = new Counter({ name: 'vllm:prompt_tokens_total', help: 'Number of prefill tokens processed.', labelNames: ['model_name'], registers: r });
  const genTokens = new Counter({
    name: 'vllm:generation_tokens_total',
    help: 'Number of generation tokens processed.',
    labelNames: ['model_name'],
    registers: r,
  });
  // One scrape reads the load once for the three gauges (the first gauge's collect fetches it).
  let snapshot: Promise<LoadSnapshot | undefined> | undefined;
  const current = () => (snapshot ??= load().catch(() => undefined));
  const gauge = (name: string, help: string, pick: (l: LoadSnapshot) => number, first = false) =>
    new Gauge({
      name,
      help,
      labelNames: ['model_name'],
      registers: r,
      async collect() {
        if (first) snapshot = undefined;
        const l = await current();
        this.set(labels, l ? pick(l) : 0);
      },
    });
  gauge('vllm:num_requests_running', 'Number of requests in model execution batches.', (l) => l.running, true);
  gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.', (l) => l.waiting);
  gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.', (l) => l.kvCacheUsage);
  // Every labelled series exists from the start (dashboards and parsers see them before traffic).
  for (const reason of ['stop', 'length', 'abort']) success.inc({ ...labels, finished_reason: reason }, 0);
  promptTokens.inc(labels, 0);
  genTokens.inc(labels, 0);
  ttft.zero(labels);
  itl.zero(labels);
  e2e.zero(labels);
  return {
    registry,
    request(route, method, status) {
      http.inc({ handler: route, method, status: `${Math.floor(status / 100)}xx` });
      tsrayRequests.inc({ endpoint: route, status: String(status) });
    },
    firstToken: (s) => ttft.observe(labels, s),
    interToken: (s) => itl.observe(labels, s),
    finished({ seconds, promptTokens: p, generationTokens: g, finishedReasons }) {
      e2e.observe(labels, seconds);
      promptTokens.inc(labels, p);
      genTokens.inc(labels, g);
      for (const reason of finishedReasons) success.inc({ ...labels, finished_reason: reason });
    },
  };
}
