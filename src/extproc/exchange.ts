import { randomUUID } from 'node:crypto';
import type { AccessRecord } from '../access/record.ts';
import { tokensOf } from '../access/record.ts';
import { errors } from '../api/errors.ts';
import type { ExchangeState, GatewayContext } from '../endpoints/context.ts';
import { newExchangeState } from '../endpoints/context.ts';
import type { EndpointProcessor } from '../endpoints/endpoint.ts';
import { UPSTREAM_HEADER } from '../endpoints/model-call.ts';
import { matchEndpoint } from '../endpoints/registry.ts';
import { authenticate } from '../identity/virtual-keys.ts';
import type { Clock, Telemetry } from '../telemetry/telemetry.ts';
import type { Logger } from '../telemetry/logger.ts';
import { errorFields } from '../telemetry/logger.ts';
import {
  CONTINUE,
  readHeaders,
  reject,
  reply,
  type Decision,
  type Phase,
  type ProcessingRequest,
  type ProcessingResponse,
} from './messages.ts';

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

/** The outcome of an exchange that ended without a final response from upstream. */
export type Interruption = 'cancelled' | 'incomplete';

/**
 * One HTTP exchange, as Envoy presents it over one ext_proc stream. It answers every message with exactly one
 * reply of the matching type (or an ImmediateResponse), buffers bodies that arrive in pieces, and writes exactly
 * one access record however the exchange ends. Decisions are delegated to the endpoint's processor.
 */
export class Exchange {
  readonly state: ExchangeState = newExchangeState();
  private processor: EndpointProcessor | undefined;
  private readonly requestChunks: Buffer[] = [];
  private requestBytes = 0;
  private readonly responseChunks: Buffer[] = [];
  private responseBytes = 0;
  private responseOverflowed = false;
  private readonly startedAt: number;
  private upstreamLatencyMs: number | null = null;
  private ttftMs: number | null = null;
  private streamCounted = false;
  private finished = false;
  private readonly gateway: GatewayContext;
  private readonly telemetry: Telemetry;
  private readonly clock: Clock;
  private readonly logger: Logger;

  constructor(gateway: GatewayContext, telemetry: Telemetry, clock: Clock, logger: Logger) {
    this.gateway = gateway;
    this.telemetry = telemetry;
    this.clock = clock;
    this.logger = logger;
    this.startedAt = clock.monotonicMs();
    telemetry.exchangeOpened();
  }

  /** True once the exchange needs no further messages: the server may end the stream. */
  get done(): boolean {
    return this.finished;
  }

  /**
   * Handles one message. Returns the reply, or undefined when none is due (observability mode, where Envoy
   * expects no answer). Throws ProtocolError for a message that carries no request at all.
   */
  process(message: ProcessingRequest): ProcessingResponse | undefined {
    const phase = message.request;
    if (!phase) throw new ProtocolError('ProcessingRequest without a request');
    const started = this.clock.monotonicMs();
    let decision: Decision;
    try {
      decision = this.finished ? CONTINUE : this.decide(phase, message);
    } catch (error) {
      this.logger.error('exchange decision failed', { request_id: this.state.requestId, phase, ...errorFields(error) });
      this.state.response.errorCode = 'gateway_error';
      decision = reject(errors.internal(), 'portcullis_internal_error');
    }
    const response = reply(phase, decision, { setContentLength: this.bodyIsBuffered(phase) });
    this.telemetry.phaseProcessed(phase, (this.clock.monotonicMs() - started) / 1000);
    if (decision.action === 'respond') {
      if (decision.status >= 400) this.state.response.errorCode ??= decision.details.replace(/^portcullis_/, '');
      const outcome = decision.status >= 500 ? 'gateway_error' : decision.status >= 400 ? 'rejected' : 'ok';
      this.finish(decision.status, outcome);
    } else if (this.isLastMessage(phase, message)) {
      this.finish(this.state.response.status ?? 0, undefined);
    }
    return message.observabilityMode ? undefined : response;
  }

  /** The stream ended before the response did (client went away, upstream reset, Envoy gave up). */
  interrupt(reason: Interruption): void {
    if (this.finished) return;
    this.finish(this.state.response.status ?? 0, reason);
  }

  private decide(phase: Phase, message: ProcessingRequest): Decision {
    switch (phase) {
      case 'requestHeaders':
        return this.onRequestHeaders(message);
      case 'requestBody':
        return this.onRequestBody(message.requestBody?.body ?? Buffer.alloc(0), message.requestBody?.endOfStream ?? false);
      case 'responseHeaders':
        return this.onResponseHeaders(message);
      case 'responseBody':
        return this.onResponseBody(message.responseBody?.body ?? Buffer.alloc(0), message.responseBody?.endOfStream ?? false);
      case 'requestTrailers':
      case 'responseTrailers':
        return CONTINUE;
    }
  }

  private onRequestHeaders(message: ProcessingRequest): Decision {
    const headers = readHeaders(message.requestHeaders?.headers);
    const { state, gateway } = this;
    state.requestId = headers.get('x-request-id') ?? randomUUID();
    state.method = headers.get(':method') ?? '';
    state.path = headers.get(':path') ?? '';

    const authentication = authenticate(headers.get('authorization'), gateway.keys);
    if (!authentication.ok) {
      return authentication.reason === 'missing'
        ? reject(errors.missingKey(), 'portcullis_missing_key')
        : reject(errors.invalidKey(), 'portcullis_invalid_key');
    }
    state.caller = authentication.caller;

    const match = matchEndpoint(state.method, state.path);
    if (match.kind === 'unknown') return reject(errors.unknownPath(state.method, state.path), 'portcullis_unknown_path');
    if (match.kind === 'wrong_method') {
      return reject(errors.methodNotAllowed(state.method, state.path, match.allowed), 'portcullis_method_not_allowed');
    }
    const endpoint = match.endpoint;
    if (endpoint.readsBody) {
      const contentType = headers.get('content-type') ?? '';
      if (!/^application\/json\s*(;|$)/i.test(contentType)) {
        return reject(errors.unsupportedMediaType(contentType), 'portcullis_unsupported_media_type');
      }
      const limit = gateway.config.limits.max_request_body_bytes;
      const declaredLength = Number(headers.get('content-length') ?? '0');
      if (declaredLength > limit) return reject(errors.bodyTooLarge(limit), 'portcullis_body_too_large');
      if (message.requestHeaders?.endOfStream) return reject(errors.missingBody(), 'portcullis_missing_body');
    }
    this.processor = endpoint.create(gateway, state);
    const decision = this.processor.onRequestHeaders(headers);
    // Only the gateway chooses the upstream: a client-supplied routing header must never reach route selection.
    if (decision.action === 'continue' && headers.has(UPSTREAM_HEADER)) {
      return { ...decision, headers: { ...decision.headers, remove: [...(decision.headers?.remove ?? []), UPSTREAM_HEADER] } };
    }
    return decision;
  }

  private onRequestBody(chunk: Buffer, endOfStream: boolean): Decision {
    const processor = this.processor;
    if (!processor) {
      // Request headers were not sent to the gateway: it cannot authenticate, so it must not let this through.
      return reject(errors.misconfigured('request headers must be sent to the ext_proc server'), 'portcullis_no_headers');
    }
    const limit = this.gateway.config.limits.max_request_body_bytes;
    this.requestBytes += chunk.length;
    if (this.requestBytes > limit) return reject(errors.bodyTooLarge(limit), 'portcullis_body_too_large');
    this.requestChunks.push(chunk);
    // Streamed request bodies are held back chunk by chunk and released, rewritten, with the last one.
    if (!endOfStream) return { action: 'continue', body: 'clear' };
    const body = this.requestChunks.length === 1 ? chunk : Buffer.concat(this.requestChunks);
    this.requestChunks.length = 0;
    return processor.onRequestBody(body);
  }

  private onResponseHeaders(message: ProcessingRequest): Decision {
    const headers = readHeaders(message.responseHeaders?.headers);
    const status = Number(headers.get(':status'));
    this.state.response.status = Number.isInteger(status) ? status : undefined;
    this.state.response.headers = headers;
    this.upstreamLatencyMs = this.clock.monotonicMs() - this.startedAt;
    const decision = this.processor?.onResponseHeaders(headers) ?? CONTINUE;
    if (this.state.response.streaming && !this.streamCounted) {
      this.streamCounted = true;
      this.telemetry.streamOpened();
    }
    return decision;
  }

  private onResponseBody(chunk: Buffer, endOfStream: boolean): Decision {
    const processor = this.processor;
    if (!processor) return CONTINUE;
    if (this.state.response.streaming) {
      if (this.ttftMs === null && chunk.length > 0) this.ttftMs = this.clock.monotonicMs() - this.startedAt;
      return processor.onResponseChunk(chunk, endOfStream);
    }
    // Buffered bodies arrive whole; a body that arrives in pieces (an operator chose STREAMED) passes through
    // untouched and is inspected once complete, up to the response limit.
    if (!this.responseOverflowed) {
      this.responseBytes += chunk.length;
      if (this.responseBytes > this.gateway.config.limits.max_response_body_bytes) {
        this.responseOverflowed = true;
        this.responseChunks.length = 0;
      } else {
        this.responseChunks.push(chunk);
      }
    }
    if (!endOfStream) return CONTINUE;
    if (this.responseOverflowed) return CONTINUE;
    const body = this.responseChunks.length === 1 ? chunk : Buffer.concat(this.responseChunks);
    this.responseChunks.length = 0;
    const wholeBodyInThisMessage = this.responseBytes === chunk.length;
    const decision = processor.onResponseBody(body);
    // Earlier pieces already left: a rewrite of the whole body is only possible when it came in one message.
    return wholeBodyInThisMessage ? decision : CONTINUE;
  }

  /** Whether Envoy still holds this phase's headers, so a body mutation must carry the new content-length. */
  private bodyIsBuffered(phase: Phase): boolean {
    if (phase === 'requestBody') return true;
    return phase === 'responseBody' && !this.state.response.streaming;
  }

  private isLastMessage(phase: Phase, message: ProcessingRequest): boolean {
    switch (phase) {
      case 'responseHeaders':
        return message.responseHeaders?.endOfStream === true;
      case 'responseBody':
        return message.responseBody?.endOfStream === true;
      case 'responseTrailers':
        return true;
      default:
        return false;
    }
  }

  private finish(status: number, problem: AccessRecord['outcome'] | undefined): void {
    if (this.finished) return;
    this.finished = true;
    const { state } = this;
    if (this.streamCounted) this.telemetry.streamClosed();
    let outcome: AccessRecord['outcome'] = problem ?? 'ok';
    if (!problem && status >= 400) outcome = 'upstream_error';
    const target = state.target;
    const record: AccessRecord = {
      time: this.clock.now().toISOString(),
      request_id: state.requestId,
      key_id: state.caller?.keyId ?? null,
      method: state.method,
      path: state.path,
      operation: state.operation ?? null,
      model_asked: state.modelAsked ?? null,
      model_served: state.response.servedModel ?? target?.model.upstream_model ?? null,
      upstream: target?.upstream.name ?? null,
      region: target?.upstream.region ?? null,
      stream: state.stream,
      status,
      outcome,
      error_code: state.response.errorCode ?? null,
      tokens: tokensOf(state.response.usage),
      latency_ms: round(this.clock.monotonicMs() - this.startedAt),
      upstream_latency_ms: this.upstreamLatencyMs === null ? null : round(this.upstreamLatencyMs),
      ttft_ms: this.ttftMs === null ? null : round(this.ttftMs),
    };
    this.telemetry.exchangeFinished(record);
    this.telemetry.exchangeClosed();
  }
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
