import type { Decision, Headers } from '../extproc/messages.ts';
import type { ExchangeState, GatewayContext } from './context.ts';

/**
 * One processor per endpoint behind one interface (after Envoy AI Gateway's internal/extproc), created per
 * exchange so it can keep per-stream state. The exchange owns the protocol (ordering, reply types, buffering,
 * finishing); a processor only decides.
 */
export interface EndpointProcessor {
  /** Decide at request headers; processors that need the body answer CONTINUE here. */
  onRequestHeaders(headers: Headers): Decision;
  /** The complete request body. */
  onRequestBody(body: Buffer): Decision;
  onResponseHeaders(headers: Headers): Decision;
  /** The complete response body (buffered responses). */
  onResponseBody(body: Buffer): Decision;
  /** One chunk of a streamed (SSE) response; `last` marks the end of the stream. */
  onResponseChunk(chunk: Buffer, last: boolean): Decision;
}

export interface Endpoint {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** Whether the request carries a JSON body the gateway must read. */
  readonly readsBody: boolean;
  create(gateway: GatewayContext, state: ExchangeState): EndpointProcessor;
}
