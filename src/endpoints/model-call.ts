import { gunzipSync, brotliDecompressSync, inflateSync } from 'node:zlib';
import type { z } from 'zod';
import { errors } from '../api/errors.ts';
import { chatCompletionRequestSchema, describeFirstIssue, embeddingsRequestSchema } from '../api/openai.ts';
import { SseEventSplitter, type SseEvent } from '../api/sse.ts';
import { CONTINUE, reject, type Decision, type Headers } from '../extproc/messages.ts';
import type { Operation } from '../providers/provider.ts';
import type { ExchangeState, GatewayContext } from './context.ts';
import type { Endpoint, EndpointProcessor } from './endpoint.ts';

/** The header Envoy's routes match to pick the upstream's cluster. Clients cannot set it (stripped at headers). */
export const UPSTREAM_HEADER = 'x-portcullis-upstream';

/**
 * Headers through which a caller could hand a provider its own credential or account; only the gateway speaks
 * to providers with credentials, so none of these leave as the caller sent them.
 */
const CALLER_CREDENTIAL_HEADERS = [
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'api-key',
  'x-goog-api-key',
  'openai-organization',
  'openai-project',
] as const;

interface ModelCallSpec {
  operation: Operation;
  path: string;
  schema: z.ZodType<{ model: string }>;
  streamable: boolean;
}

type JsonObject = Record<string, unknown>;

function parseJsonObject(body: Buffer): { ok: true; value: JsonObject } | { ok: false; detail: string } {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (error) {
    return { ok: false, detail: (error as Error).message };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, detail: 'expected a JSON object' };
  }
  return { ok: true, value: value as JsonObject };
}

function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Providers are asked for identity encoding, but a body that arrives compressed is still inspected, up to the
 * response limit once inflated (a compressed body can expand a thousandfold).
 */
function decodeBody(body: Buffer, encoding: string | undefined, maxOutputLength: number): Buffer | undefined {
  switch (encoding?.trim().toLowerCase()) {
    case undefined:
    case '':
    case 'identity':
      return body;
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(body, { maxOutputLength });
    case 'br':
      return brotliDecompressSync(body, { maxOutputLength });
    case 'deflate':
      return inflateSync(body, { maxOutputLength });
    default:
      return undefined;
  }
}

function queryOf(path: string): string {
  const start = path.indexOf('?');
  return start === -1 ? '' : path.slice(start);
}

function isSuccess(status: number | undefined): boolean {
  return status !== undefined && status >= 200 && status < 300;
}

class ModelCallProcessor implements EndpointProcessor {
  private readonly sse = new SseEventSplitter();
  private readonly spec: ModelCallSpec;
  private readonly gateway: GatewayContext;
  private readonly state: ExchangeState;

  constructor(spec: ModelCallSpec, gateway: GatewayContext, state: ExchangeState) {
    this.spec = spec;
    this.gateway = gateway;
    this.state = state;
  }

  onRequestHeaders(): Decision {
    return CONTINUE;
  }

  onRequestBody(body: Buffer): Decision {
    const { state, gateway, spec } = this;
    const parsed = parseJsonObject(body);
    if (!parsed.ok) return reject(errors.invalidJson(parsed.detail), 'portcullis_invalid_json');
    const request = parsed.value;
    if (request.model === undefined || request.model === null || request.model === '') {
      return reject(errors.missingModel(), 'portcullis_missing_model');
    }
    const validated = spec.schema.safeParse(request);
    if (!validated.success) {
      const issue = describeFirstIssue(validated.error);
      return reject(errors.invalidRequest(issue.message, issue.param), 'portcullis_invalid_request');
    }
    const model = validated.data.model;
    state.modelAsked = model;
    const caller = state.caller;
    const target = caller ? gateway.catalog.resolve(caller, model) : undefined;
    if (!target) return reject(errors.modelNotFound(model), 'portcullis_model_not_found');
    state.target = target;

    let canonical: JsonObject = request;
    if (spec.streamable && request.stream === true) {
      state.stream = true;
      const streamOptions = typeof request.stream_options === 'object' && request.stream_options !== null
        ? (request.stream_options as JsonObject)
        : {};
      state.clientAskedUsage = streamOptions.include_usage === true;
      // Usage is only sent in streams that ask for it; the gateway always meters, and hides the extra chunk.
      if (!state.clientAskedUsage) canonical = { ...request, stream_options: { ...streamOptions, include_usage: true } };
    }

    const upstreamRequest = target.provider.translateRequest(spec.operation, canonical, target.model.upstream_model);
    const credentialHeaders = target.provider.credentialHeaders(gateway.credentials.get(target.upstream.name));
    return {
      action: 'continue',
      body: Buffer.from(JSON.stringify(upstreamRequest.body)),
      headers: {
        set: {
          [UPSTREAM_HEADER]: target.upstream.name,
          // The caller's query string travels on (Azure-style `api-version`, for one).
          ':path': `${target.basePath}${upstreamRequest.path}${queryOf(state.path)}`,
          'accept-encoding': 'identity',
          ...credentialHeaders,
        },
        remove: CALLER_CREDENTIAL_HEADERS.filter((name) => !(name in credentialHeaders)),
      },
      clearRouteCache: true,
      metadata: {
        key_id: caller?.keyId ?? '',
        model: model,
        upstream: target.upstream.name,
        upstream_model: target.model.upstream_model,
      },
    };
  }

  onResponseHeaders(headers: Headers): Decision {
    const { state } = this;
    if (isSuccess(state.response.status) && state.stream) {
      const contentType = headers.get('content-type') ?? '';
      if (contentType.toLowerCase().startsWith('text/event-stream')) {
        state.response.streaming = true;
        return { action: 'continue', streamResponseBody: true };
      }
    }
    return CONTINUE;
  }

  onResponseBody(body: Buffer): Decision {
    const { state } = this;
    const target = state.target;
    const status = state.response.status;
    if (!target || status === undefined) return CONTINUE;
    const encoding = state.response.headers?.get('content-encoding');
    let decoded: Buffer | undefined;
    try {
      decoded = decodeBody(body, encoding, this.gateway.config.limits.max_response_body_bytes);
    } catch {
      decoded = undefined;
    }
    if (!isSuccess(status)) {
      const contentType = decoded ? state.response.headers?.get('content-type') : undefined;
      const translated = target.provider.translateError(status, decoded ?? Buffer.alloc(0), contentType);
      state.response.errorCode = `upstream_${status}`;
      if (!translated) return CONTINUE;
      return {
        action: 'continue',
        body: Buffer.from(JSON.stringify(translated)),
        headers: { set: { 'content-type': 'application/json' }, remove: ['content-encoding'] },
      };
    }
    if (!decoded) return CONTINUE;
    const result = target.provider.translateResponse(this.spec.operation, tryParseJson(decoded.toString('utf8')));
    state.response.usage = result.usage;
    state.response.servedModel = result.servedModel;
    if (!result.body) return CONTINUE;
    return {
      action: 'continue',
      body: Buffer.from(JSON.stringify(result.body)),
      headers: { set: { 'content-type': 'application/json' }, remove: ['content-encoding'] },
    };
  }

  onResponseChunk(chunk: Buffer, last: boolean): Decision {
    if (!this.state.response.streaming) return CONTINUE;
    const heldBefore = this.sse.heldBytes;
    const events = this.sse.push(chunk);
    const tail = last ? this.sse.flush() : undefined;
    let rewritten = heldBefore > 0 || this.sse.heldBytes > 0;
    const out: Buffer[] = [];
    for (const event of events) {
      const kept = this.processEvent(event);
      if (kept !== event.raw) rewritten = true;
      if (kept) out.push(kept);
    }
    if (tail && tail.length > 0) out.push(tail);
    if (!rewritten) return CONTINUE;
    return { action: 'continue', body: Buffer.concat(out) };
  }

  /** The bytes to forward for one event: the original, a replacement, or undefined to drop it. */
  private processEvent(event: SseEvent): Buffer | undefined {
    const { state } = this;
    const target = state.target;
    if (!target || event.data === undefined || event.data === '[DONE]') return event.raw;
    const data = tryParseJson(event.data);
    if (data === undefined) return event.raw;
    const translated = target.provider.translateStreamEvent(this.spec.operation, data);
    if (translated.usage) state.response.usage = translated.usage;
    if (translated.servedModel) state.response.servedModel = translated.servedModel;
    if (translated.isUsageOnly && !state.clientAskedUsage) return undefined;
    if (translated.data) return Buffer.from(`data: ${JSON.stringify(translated.data)}\n\n`);
    return event.raw;
  }
}

function modelCallEndpoint(spec: ModelCallSpec): Endpoint {
  return {
    method: 'POST',
    path: spec.path,
    readsBody: true,
    create: (gateway, state) => {
      state.operation = spec.operation;
      return new ModelCallProcessor(spec, gateway, state);
    },
  };
}

export const chatCompletionsEndpoint = modelCallEndpoint({
  operation: 'chat.completions',
  path: '/v1/chat/completions',
  schema: chatCompletionRequestSchema,
  streamable: true,
});

export const embeddingsEndpoint = modelCallEndpoint({
  operation: 'embeddings',
  path: '/v1/embeddings',
  schema: embeddingsRequestSchema,
  streamable: false,
});
