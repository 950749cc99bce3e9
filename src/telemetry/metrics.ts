import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AccessLog, AccessRecord } from '../access/record.ts';
import type { Phase } from '../extproc/messages.ts';
import type { Telemetry } from './telemetry.ts';

const phaseLabel: Record<Phase, string> = {
  requestHeaders: 'request_headers',
  requestBody: 'request_body',
  requestTrailers: 'request_trailers',
  responseHeaders: 'response_headers',
  responseBody: 'response_body',
  responseTrailers: 'response_trailers',
};

/** Prometheus metrics plus the access log: the production Telemetry. */
export class MetricsTelemetry implements Telemetry {
  readonly registry = new Registry();
  private readonly requests: Counter<'operation' | 'model' | 'status_class' | 'outcome'>;
  private readonly phaseSeconds: Histogram<'phase'>;
  private readonly latencySeconds: Histogram<'operation' | 'stream'>;
  private readonly upstreamSeconds: Histogram<'upstream'>;
  private readonly firstTokenSeconds: Histogram<'model'>;
  private readonly tokens: Counter<'model' | 'type'>;
  private readonly errorsTotal: Counter<'code'>;
  private readonly openExchanges: Gauge;
  private readonly openStreams: Gauge;
  private readonly protocolErrors: Counter<'kind'>;
  private readonly accessLog: AccessLog;

  constructor(accessLog: AccessLog, options: { defaultMetrics?: boolean } = {}) {
    this.accessLog = accessLog;
    const registers = [this.registry];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'portcullis_process_' });
    this.requests = new Counter({
      name: 'portcullis_requests_total',
      help: 'HTTP exchanges finished, by operation, public model, status class and outcome.',
      labelNames: ['operation', 'model', 'status_class', 'outcome'],
      registers,
    });
    this.phaseSeconds = new Histogram({
      name: 'portcullis_extproc_phase_seconds',
      help: 'Time the gateway spent deciding one ext_proc message, by phase (the latency it adds).',
      labelNames: ['phase'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1],
      registers,
    });
    this.latencySeconds = new Histogram({
      name: 'portcullis_request_duration_seconds',
      help: 'Whole exchange duration as seen by the gateway, upstream included.',
      labelNames: ['operation', 'stream'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.upstreamSeconds = new Histogram({
      name: 'portcullis_upstream_response_seconds',
      help: 'Time until the upstream answered with response headers, by upstream.',
      labelNames: ['upstream'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.firstTokenSeconds = new Histogram({
      name: 'portcullis_time_to_first_token_seconds',
      help: 'Time to the first streamed chunk of an SSE response, by public model.',
      labelNames: ['model'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32],
      registers,
    });
    this.tokens = new Counter({
      name: 'portcullis_tokens_total',
      help: 'Tokens metered, by public model and type (input, cached_input, output, reasoning).',
      labelNames: ['model', 'type'],
      registers,
    });
    this.errorsTotal = new Counter({
      name: 'portcullis_errors_total',
      help: 'Exchanges that ended in an error, by error code.',
      labelNames: ['code'],
      registers,
    });
    this.openExchanges = new Gauge({
      name: 'portcullis_open_exchanges',
      help: 'ext_proc exchanges in flight.',
      registers,
    });
    this.openStreams = new Gauge({
      name: 'portcullis_open_streams',
      help: 'Streamed (SSE) responses in flight.',
      registers,
    });
    this.protocolErrors = new Counter({
      name: 'portcullis_extproc_protocol_errors_total',
      help: 'Malformed ext_proc messages received from Envoy.',
      labelNames: ['kind'],
      registers,
    });
  }

  phaseProcessed(phase: Phase, seconds: number): void {
    this.phaseSeconds.observe({ phase: phaseLabel[phase] }, seconds);
  }
  exchangeOpened(): void {
    this.openExchanges.inc();
  }
  exchangeClosed(): void {
    this.openExchanges.dec();
  }
  streamOpened(): void {
    this.openStreams.inc();
  }
  streamClosed(): void {
    this.openStreams.dec();
  }
  protocolError(kind: string): void {
    this.protocolErrors.inc({ kind });
  }

  exchangeFinished(record: AccessRecord): void {
    // The exchange's last reply is on its way to Envoy; accounting waits until it has left.
    setImmediate(() => this.account(record));
  }

  private account(record: AccessRecord): void {
    const model = record.model_asked ?? '';
    const operation = record.operation ?? 'none';
    this.requests.inc({ operation, model, status_class: `${Math.floor(record.status / 100)}xx`, outcome: record.outcome });
    this.latencySeconds.observe({ operation, stream: String(record.stream) }, record.latency_ms / 1000);
    if (record.error_code) this.errorsTotal.inc({ code: record.error_code });
    if (record.upstream && record.upstream_latency_ms !== null) {
      this.upstreamSeconds.observe({ upstream: record.upstream }, record.upstream_latency_ms / 1000);
    }
    if (record.ttft_ms !== null) this.firstTokenSeconds.observe({ model }, record.ttft_ms / 1000);
    if (record.tokens) {
      this.tokens.inc({ model, type: 'input' }, record.tokens.input);
      this.tokens.inc({ model, type: 'cached_input' }, record.tokens.cached_input);
      this.tokens.inc({ model, type: 'output' }, record.tokens.output);
      this.tokens.inc({ model, type: 'reasoning' }, record.tokens.reasoning);
    }
    this.accessLog.write(record);
  }
}
