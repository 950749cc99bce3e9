import { createHash } from 'node:crypto';

/*
 * The mock provider's decisions, free of I/O: per-request fault controls, token estimates and the
 * deterministic OpenAI-shaped bodies. Replies never echo the prompt, so logs of tests stay content-free.
 */

export interface FaultControls {
  status: number | undefined;
  errorAsText: boolean;
  firstByteDelayMs: number;
  chunkSize: number | undefined;
  chunkDelayMs: number | undefined;
  disconnectAfterChunks: number | undefined;
  content: string | undefined;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

function integerHeader(headers: Record<string, string>, name: string, min: number, max: number): Parsed<number | undefined> {
  const raw = headers[name];
  if (raw === undefined) return { ok: true, value: undefined };
  if (!/^\d+$/.test(raw.trim())) return { ok: false, message: `${name} must be an integer` };
  const value = Number(raw.trim());
  if (value < min) return { ok: false, message: `${name} must be at least ${min}` };
  return { ok: true, value: Math.min(value, max) };
}

export function parseFaultControls(headers: Record<string, string>): Parsed<FaultControls> {
  const status = integerHeader(headers, 'x-mock-status', 100, 599);
  const firstByteDelay = integerHeader(headers, 'x-mock-first-byte-delay-ms', 0, 60_000);
  const chunkSize = integerHeader(headers, 'x-mock-chunk-size', 1, 1_000_000);
  const chunkDelay = integerHeader(headers, 'x-mock-chunk-delay-ms', 0, 60_000);
  const disconnect = integerHeader(headers, 'x-mock-disconnect-after-chunks', 0, 1_000_000);
  for (const parsed of [status, firstByteDelay, chunkSize, chunkDelay, disconnect]) {
    if (!parsed.ok) return parsed;
  }
  if (!status.ok || !firstByteDelay.ok || !chunkSize.ok || !chunkDelay.ok || !disconnect.ok) {
    return { ok: false, message: 'invalid controls' };
  }
  let content: string | undefined;
  try {
    content = headers['x-mock-content'] === undefined ? undefined : decodeURIComponent(headers['x-mock-content']);
  } catch {
    return { ok: false, message: 'x-mock-content must be percent-encoded UTF-8' };
  }
  return {
    ok: true,
    value: {
      status: status.value,
      errorAsText: headers['x-mock-error-format'] === 'text',
      firstByteDelayMs: firstByteDelay.value ?? 0,
      chunkSize: chunkSize.value,
      chunkDelayMs: chunkDelay.value,
      disconnectAfterChunks: disconnect.value,
      content,
    },
  };
}

/** About four characters per token, like OpenAI's rule of thumb: deterministic, and close enough for a mock. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

export function errorBody(status: number, message: string): { error: { message: string; type: string; param: null; code: string } } {
  const kinds: Record<number, [string, string]> = {
    400: ['invalid_request_error', 'invalid_request'],
    401: ['authentication_error', 'invalid_api_key'],
    403: ['permission_denied', 'permission_denied'],
    404: ['invalid_request_error', 'not_found'],
    413: ['invalid_request_error', 'request_too_large'],
    429: ['rate_limit_exceeded', 'rate_limit_exceeded'],
  };
  const [type, code] = kinds[status] ?? (status >= 500 ? ['server_error', 'server_error'] : ['invalid_request_error', 'error']);
  return { error: { message, type, param: null, code } };
}

export interface ChatRequest {
  model: string;
  messages: Array<{ role: string; content: unknown }>;
  stream: boolean;
  includeUsage: boolean;
  maxTokens: number | undefined;
}

export function parseChatRequest(body: unknown): Parsed<ChatRequest> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, message: 'body must be a JSON object' };
  const record = body as Record<string, unknown>;
  if (typeof record.model !== 'string' || record.model === '') return { ok: false, message: 'you must provide a model parameter' };
  if (!Array.isArray(record.messages) || record.messages.length === 0) return { ok: false, message: 'messages must be a non-empty array' };
  const streamOptions = record.stream_options as Record<string, unknown> | undefined | null;
  const maxTokens = record.max_completion_tokens ?? record.max_tokens;
  return {
    ok: true,
    value: {
      model: record.model,
      messages: record.messages as ChatRequest['messages'],
      stream: record.stream === true,
      includeUsage: streamOptions?.include_usage === true,
      maxTokens: typeof maxTokens === 'number' ? maxTokens : undefined,
    },
  };
}

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content.map((part) => (typeof part === 'object' && part !== null && 'text' in part ? String(part.text) : '')).join(' ');
  }
  return '';
}

export interface Completion {
  content: string;
  finishReason: 'stop' | 'length';
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export function completeChat(request: ChatRequest, counter: number, contentOverride: string | undefined): Completion {
  const promptText = request.messages.map((message) => textOf(message.content));
  const promptTokens = promptText.reduce((sum, text) => sum + estimateTokens(text) + 3, 0);
  const lastUser = [...request.messages].reverse().find((message) => message.role === 'user');
  const words = textOf(lastUser?.content).split(/\s+/).filter(Boolean).length;
  let content = contentOverride ?? `Mock reply #${counter} from ${request.model}: ${words} words received.`;
  let finishReason: Completion['finishReason'] = 'stop';
  if (request.maxTokens !== undefined && estimateTokens(content) > request.maxTokens) {
    content = content.slice(0, request.maxTokens * 4);
    finishReason = 'length';
  }
  const completionTokens = estimateTokens(content);
  return {
    content,
    finishReason,
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens },
  };
}

export function chatCompletionBody(id: string, model: string, created: number, completion: Completion): Record<string, unknown> {
  return {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: [
      { index: 0, message: { role: 'assistant', content: completion.content }, finish_reason: completion.finishReason, logprobs: null },
    ],
    usage: completion.usage,
    system_fingerprint: 'mock',
  };
}

/** The SSE events of a streamed completion, in OpenAI's order, each a complete `data:` event. */
export function chatCompletionEvents(
  id: string,
  model: string,
  created: number,
  completion: Completion,
  chunkSize: number,
  includeUsage: boolean,
): string[] {
  const chunk = (delta: Record<string, unknown>, finishReason: string | null) => ({
    id,
    object: 'chat.completion.chunk',
    created,
    model,
    system_fingerprint: 'mock',
    choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }],
    ...(includeUsage ? { usage: null } : {}),
  });
  const events = [chunk({ role: 'assistant', content: '' }, null)];
  // Chunks are cut between code points, never inside a surrogate pair, as a real tokenizer's pieces are.
  const codePoints = Array.from(completion.content);
  for (let offset = 0; offset < codePoints.length; offset += chunkSize) {
    events.push(chunk({ content: codePoints.slice(offset, offset + chunkSize).join('') }, null));
  }
  events.push(chunk({}, completion.finishReason));
  const lines = events.map((event) => `data: ${JSON.stringify(event)}\n\n`);
  if (includeUsage) {
    lines.push(
      `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model, system_fingerprint: 'mock', choices: [], usage: completion.usage })}\n\n`,
    );
  }
  lines.push('data: [DONE]\n\n');
  return lines;
}

export interface EmbeddingsRequest {
  model: string;
  inputs: string[];
  dimensions: number;
  base64: boolean;
}

export function parseEmbeddingsRequest(body: unknown): Parsed<EmbeddingsRequest> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { ok: false, message: 'body must be a JSON object' };
  const record = body as Record<string, unknown>;
  if (typeof record.model !== 'string' || record.model === '') return { ok: false, message: 'you must provide a model parameter' };
  const input = record.input;
  let inputs: string[];
  if (typeof input === 'string') inputs = [input];
  // Strings embed as themselves (['hello'] equals 'hello', as in OpenAI's API); token arrays by their JSON.
  else if (Array.isArray(input) && input.length > 0) inputs = input.map((item) => (typeof item === 'string' ? item : JSON.stringify(item)));
  else return { ok: false, message: 'input must be a string or a non-empty array' };
  const dimensions = typeof record.dimensions === 'number' && record.dimensions > 0 ? Math.min(record.dimensions, 4096) : 8;
  return { ok: true, value: { model: record.model, inputs, dimensions, base64: record.encoding_format === 'base64' } };
}

/** A unit vector derived from the input's hash: equal inputs give equal vectors. */
export function embed(input: string, dimensions: number): number[] {
  const values: number[] = [];
  let seed = createHash('sha256').update(input).digest();
  while (values.length < dimensions) {
    for (let i = 0; i + 4 <= seed.length && values.length < dimensions; i += 4) {
      values.push(seed.readUInt32LE(i) / 0xffffffff - 0.5);
    }
    seed = createHash('sha256').update(seed).digest();
  }
  const norm = Math.sqrt(values.reduce((sum, value) => sum + value * value, 0)) || 1;
  return values.map((value) => Math.fround(value / norm));
}

export function embeddingsBody(request: EmbeddingsRequest): Record<string, unknown> {
  const tokens = request.inputs.reduce((sum, input) => sum + estimateTokens(input), 0);
  return {
    object: 'list',
    data: request.inputs.map((input, index) => {
      const vector = embed(input, request.dimensions);
      return {
        object: 'embedding',
        index,
        embedding: request.base64 ? Buffer.from(new Float32Array(vector).buffer).toString('base64') : vector,
      };
    }),
    model: request.model,
    usage: { prompt_tokens: tokens, total_tokens: tokens },
  };
}

export const mockModels = ['mock-gpt-4o-mini', 'mock-gpt-4o', 'mock-embedding-small'];
