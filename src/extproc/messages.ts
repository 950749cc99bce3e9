/*
 * Typed views of Envoy's ext_proc messages (types generated from Envoy's protos at setup) and the builders
 * that turn the gateway's decisions into replies. Everything protocol-shaped lives here, so the rules that bite
 * (raw_value only, BoolValue append, content-length with buffered body mutations, literal mode overrides)
 * are applied in exactly one place.
 */
import type { GatewayError } from '../api/errors.ts';
import type { HeaderMap__Output } from '../generated/envoy/config/core/v3/HeaderMap.ts';
import type { HeaderValueOption } from '../generated/envoy/config/core/v3/HeaderValueOption.ts';
import type { CommonResponse } from '../generated/envoy/service/ext_proc/v3/CommonResponse.ts';
import type { HeaderMutation } from '../generated/envoy/service/ext_proc/v3/HeaderMutation.ts';
import type { ProcessingRequest__Output } from '../generated/envoy/service/ext_proc/v3/ProcessingRequest.ts';
import type { ProcessingResponse } from '../generated/envoy/service/ext_proc/v3/ProcessingResponse.ts';
import type { StatusCode } from '../generated/envoy/type/v3/StatusCode.ts';
import type { Struct } from '../generated/google/protobuf/Struct.ts';
import type { Value } from '../generated/google/protobuf/Value.ts';

export type { ProcessingRequest__Output as ProcessingRequest, ProcessingResponse };

export type Phase = NonNullable<ProcessingRequest__Output['request']>;

/** Lower-cased header names to values; pseudo-headers (":path") included. */
export type Headers = ReadonlyMap<string, string>;

export function readHeaders(map: HeaderMap__Output | null | undefined): Map<string, string> {
  const headers = new Map<string, string>();
  for (const header of map?.headers ?? []) {
    // Envoy sends values in raw_value (bytes); `value` is only filled by old Envoys.
    const value = header.rawValue && header.rawValue.length > 0 ? header.rawValue.toString('latin1') : (header.value ?? '');
    if (header.key) headers.set(header.key.toLowerCase(), value);
  }
  return headers;
}

export interface HeaderEdits {
  set?: Readonly<Record<string, string>>;
  remove?: readonly string[];
}

export type MetadataValue = string | number | boolean;

/** What the gateway wants done with the current message; turned into exactly one reply of the matching type. */
export type Decision =
  | {
      action: 'continue';
      headers?: HeaderEdits;
      /** A replacement for the body (or this chunk of it); 'clear' withholds the chunk. */
      body?: Buffer | 'clear';
      /** Re-run route selection: only honoured in request replies that also mutate headers. */
      clearRouteCache?: boolean;
      /** In a response-headers reply: switch the response body to STREAMED (SSE). */
      streamResponseBody?: boolean;
      /** Emitted as dynamic metadata under the `portcullis` namespace (Envoy access logs, later filters). */
      metadata?: Readonly<Record<string, MetadataValue>>;
    }
  | {
      /** Answer the client directly (ImmediateResponse): nothing is sent upstream, or no more of the response. */
      action: 'respond';
      status: number;
      body: unknown;
      /** Envoy's response code details (`%RESPONSE_CODE_DETAILS%`): why the gateway answered. */
      details: string;
    };

export const CONTINUE: Decision = Object.freeze({ action: 'continue' });

export function reject(error: GatewayError, details: string): Decision {
  return { action: 'respond', status: error.status, body: error.body, details };
}

export const METADATA_NAMESPACE = 'portcullis';
/** Metadata key set on every ImmediateResponse. */
export const ANSWERED_BY_GATEWAY = 'answered';

function setHeaderOption(key: string, value: string): HeaderValueOption {
  // raw_value only (never both fields), and `append` as a BoolValue: the forms every Envoy version honours.
  // latin1 mirrors readHeaders, so a value read from Envoy goes back byte for byte (a :path with raw UTF-8).
  return { header: { key, rawValue: Buffer.from(value, 'latin1') }, append: { value: false } };
}

function headerMutation(edits: HeaderEdits | undefined): HeaderMutation | undefined {
  const set = edits?.set ? Object.entries(edits.set) : [];
  const remove = edits?.remove ?? [];
  if (set.length === 0 && remove.length === 0) return undefined;
  return {
    setHeaders: set.map(([key, value]) => setHeaderOption(key, value)),
    removeHeaders: [...remove],
  };
}

function metadataValue(value: MetadataValue): Value {
  if (typeof value === 'string') return { stringValue: value };
  if (typeof value === 'number') return { numberValue: value };
  return { boolValue: value };
}

export function metadataStruct(values: Readonly<Record<string, MetadataValue>>): Struct {
  const fields: Record<string, Value> = {};
  for (const [key, value] of Object.entries(values)) fields[key] = metadataValue(value);
  return { fields: { [METADATA_NAMESPACE]: { structValue: { fields } } } };
}

export interface ReplyOptions {
  /**
   * The body is replaced in a buffered phase whose headers are still held by Envoy: the new content-length must
   * travel in the same reply or the upstream/downstream framing would be wrong.
   */
  setContentLength: boolean;
}

function commonResponse(
  decision: Extract<Decision, { action: 'continue' }>,
  options: ReplyOptions,
): CommonResponse | undefined {
  let edits = decision.headers;
  if (decision.body instanceof Buffer && options.setContentLength) {
    edits = { ...edits, set: { ...edits?.set, 'content-length': String(decision.body.length) } };
  }
  const mutation = headerMutation(edits);
  const body =
    decision.body === undefined
      ? undefined
      : decision.body === 'clear'
        ? { clearBody: true }
        : { body: decision.body };
  if (!mutation && !body) return undefined;
  return {
    status: 'CONTINUE',
    ...(mutation ? { headerMutation: mutation } : {}),
    ...(body ? { bodyMutation: body } : {}),
    // Envoy ignores clear_route_cache without a header mutation in the same reply; sending it alone is a bug.
    ...(decision.clearRouteCache && mutation ? { clearRouteCache: true } : {}),
  };
}

export function immediateResponse(status: number, body: unknown, details: string): ProcessingResponse {
  return {
    immediateResponse: {
      // Envoy's StatusCode enum names every status the gateway sends; it is typed as a union of literals.
      status: { code: status as StatusCode },
      headers: { setHeaders: [setHeaderOption('content-type', 'application/json')] },
      body: Buffer.from(JSON.stringify(body)),
      details,
    },
  };
}

/** The one reply for a message of the given phase. */
export function reply(phase: Phase, decision: Decision, options: ReplyOptions): ProcessingResponse {
  if (decision.action === 'respond') {
    // The marker lets Envoy's local-reply mappers leave the gateway's own answers alone (they reshape only
    // Envoy-generated errors into OpenAI's envelope).
    return { ...immediateResponse(decision.status, decision.body, decision.details), dynamicMetadata: metadataStruct({ [ANSWERED_BY_GATEWAY]: true }) };
  }
  const response: ProcessingResponse = {};
  if (phase === 'requestTrailers' || phase === 'responseTrailers') {
    const mutation = headerMutation(decision.headers);
    response[phase] = mutation ? { headerMutation: mutation } : {};
  } else {
    const common = commonResponse(decision, options);
    response[phase] = common ? { response: common } : {};
  }
  if (decision.streamResponseBody && phase === 'responseHeaders') {
    // Body modes in an override are literal (unset means NONE), so both are named.
    response.modeOverride = { responseBodyMode: 'STREAMED', responseTrailerMode: 'SKIP' };
  }
  if (decision.metadata) response.dynamicMetadata = metadataStruct(decision.metadata);
  return response;
}
