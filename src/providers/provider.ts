import type { OpenAIErrorBody } from '../api/errors.ts';
import type { TokenUsage } from '../api/openai.ts';
import type { ProviderSchema } from '../config/schema.ts';

/** The client-facing operations the gateway speaks (the OpenAI surface). */
export type Operation = 'chat.completions' | 'embeddings';

export interface UpstreamRequest {
  /** Path appended to the upstream's base path, e.g. "/chat/completions". */
  path: string;
  body: Record<string, unknown>;
}

export interface TranslatedResult {
  /** A replacement body in the client's (OpenAI) shape, or undefined when the upstream body can pass as is. */
  body: Record<string, unknown> | undefined;
  usage: TokenUsage | undefined;
  /** The model the upstream says it served, when it says. */
  servedModel: string | undefined;
}

export interface TranslatedStreamEvent {
  /** A replacement event payload, or undefined when the upstream event can pass as is. */
  data: Record<string, unknown> | undefined;
  usage: TokenUsage | undefined;
  servedModel: string | undefined;
  /** True for the usage-only chunk the gateway asked for on the caller's behalf. */
  isUsageOnly: boolean;
}

/**
 * One module per provider schema, each with the same shape (after Portkey's providers/<name>/): translate the
 * request, the response, a stream event and an error, and inject the credential. Adding a provider means adding
 * one file that implements this and registering it in registry.ts.
 */
export interface Provider {
  readonly schema: ProviderSchema;
  translateRequest(operation: Operation, request: Record<string, unknown>, upstreamModel: string): UpstreamRequest;
  translateResponse(operation: Operation, body: unknown): TranslatedResult;
  translateStreamEvent(operation: Operation, data: unknown): TranslatedStreamEvent;
  /** The upstream's error (any shape, possibly not JSON) in OpenAI's envelope, or undefined if already in it. */
  translateError(status: number, body: Buffer, contentType: string | undefined): OpenAIErrorBody | undefined;
  /** Headers that carry the provider credential; the caller's own authorization never reaches the provider. */
  credentialHeaders(credential: string | undefined): Record<string, string>;
}
