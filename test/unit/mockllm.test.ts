import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { estimateTokens } from '../../src/mockllm/behaviour.ts';
import { startMockLlm, type MockLlm, type RecordedRequest } from '../../src/mockllm/server.ts';

let mock: MockLlm;
beforeAll(async () => {
  mock = await startMockLlm({ port: 0 });
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => {
  mock.clearRequests();
});

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${mock.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

const prompt = 'Tell me about the zebra-quokka-platypus please';
const chatRequest = {
  model: 'mock-gpt-4o-mini',
  messages: [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: prompt },
  ],
};

interface ChatCompletion {
  id: string;
  object: string;
  model: string;
  choices: Array<{ index: number; message: { role: string; content: string }; finish_reason: string }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

interface ChatChunk {
  id: string;
  object: string;
  model: string;
  choices: Array<{ index: number; delta: { role?: string; content?: string }; finish_reason: string | null }>;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

interface ErrorEnvelope {
  error: { message: string; type: string; param: null; code: string };
}

/** The data payloads of an SSE body, in order ("[DONE]" kept as a string). */
function sseData(text: string): Array<ChatChunk | '[DONE]'> {
  expect(text.endsWith('\n\n')).toBe(true);
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((event) => {
      expect(event.startsWith('data: ')).toBe(true);
      const data = event.slice('data: '.length);
      return data === '[DONE]' ? '[DONE]' : (JSON.parse(data) as ChatChunk);
    });
}

function isChunk(event: ChatChunk | '[DONE]' | undefined): event is ChatChunk {
  return typeof event === 'object';
}

describe('chat completions (non-streaming)', () => {
  it('answers in OpenAI shape with consistent usage arithmetic', async () => {
    const response = await post('/v1/chat/completions', chatRequest);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/json');
    const body = (await response.json()) as ChatCompletion;
    expect(body.object).toBe('chat.completion');
    expect(body.id).toMatch(/^chatcmpl-mock-\d+$/);
    expect(body.model).toBe('mock-gpt-4o-mini');
    expect(body.choices).toHaveLength(1);
    const choice = body.choices[0];
    expect(choice?.index).toBe(0);
    expect(choice?.message.role).toBe('assistant');
    expect(choice?.finish_reason).toBe('stop');
    // 6 words in the last user message.
    expect(choice?.message.content).toMatch(/^Mock reply #\d+ from mock-gpt-4o-mini: 6 words received\.$/);
    const content = choice?.message.content ?? '';
    const expectedPrompt = estimateTokens('You are terse.') + 3 + estimateTokens(prompt) + 3;
    expect(body.usage).toEqual({
      prompt_tokens: expectedPrompt,
      completion_tokens: Math.ceil(content.length / 4),
      total_tokens: expectedPrompt + Math.ceil(content.length / 4),
    });
  });

  it('never echoes the prompt text', async () => {
    const text = await (await post('/v1/chat/completions', chatRequest)).text();
    expect(text).not.toContain('zebra-quokka-platypus');
    expect(text).not.toContain('You are terse');
  });

  it('numbers replies so consecutive answers differ', async () => {
    const first = (await (await post('/v1/chat/completions', chatRequest)).json()) as ChatCompletion;
    const second = (await (await post('/v1/chat/completions', chatRequest)).json()) as ChatCompletion;
    expect(first.id).not.toBe(second.id);
    const number = (body: ChatCompletion) => Number(/^chatcmpl-mock-(\d+)$/.exec(body.id)?.[1]);
    expect(number(second)).toBe(number(first) + 1);
  });

  it('uses x-mock-content and truncates to max_tokens with finish_reason length', async () => {
    const custom = (await (await post('/v1/chat/completions', chatRequest, { 'x-mock-content': encodeURIComponent('Grüße 😀') })).json()) as ChatCompletion;
    expect(custom.choices[0]?.message.content).toBe('Grüße 😀');
    const truncated = (await (
      await post('/v1/chat/completions', { ...chatRequest, max_tokens: 2 }, { 'x-mock-content': 'abcdefghijklmnop' })
    ).json()) as ChatCompletion;
    expect(truncated.choices[0]?.message.content).toBe('abcdefgh');
    expect(truncated.choices[0]?.finish_reason).toBe('length');
    expect(truncated.usage.completion_tokens).toBe(2);
  });

  it('rejects a request without model or messages with a 400 envelope', async () => {
    const noModel = await post('/v1/chat/completions', { messages: chatRequest.messages });
    expect(noModel.status).toBe(400);
    expect(((await noModel.json()) as ErrorEnvelope).error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' });
    expect((await post('/v1/chat/completions', { model: 'm', messages: [] })).status).toBe(400);
  });
});

describe('chat completions (streaming)', () => {
  const content = 'abcdefghijklmnopqrstuvw'; // 23 characters: 5 chunks of 5, the last one short.

  async function stream(extra: Record<string, unknown>, headers: Record<string, string> = {}) {
    const response = await post('/v1/chat/completions', { ...chatRequest, stream: true, ...extra }, {
      'x-mock-content': content,
      'x-mock-chunk-size': '5',
      ...headers,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    return sseData(await response.text());
  }

  it('sends role chunk, content chunks of x-mock-chunk-size characters, finish chunk, [DONE]', async () => {
    const events = await stream({});
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1);
    expect(chunks.every(isChunk)).toBe(true);
    const typed = chunks.filter(isChunk);
    expect(typed).toHaveLength(1 + 5 + 1);
    expect(typed[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: '' });
    expect(typed.slice(1, 6).map((chunk) => chunk.choices[0]?.delta.content)).toEqual(['abcde', 'fghij', 'klmno', 'pqrst', 'uvw']);
    expect(typed.slice(0, 6).every((chunk) => chunk.choices[0]?.finish_reason === null)).toBe(true);
    expect(typed[6]?.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    // Without include_usage there is no usage field at all.
    expect(typed.every((chunk) => !('usage' in chunk))).toBe(true);
    // Every chunk belongs to the same completion.
    expect(new Set(typed.map((chunk) => chunk.id)).size).toBe(1);
    expect(typed.every((chunk) => chunk.object === 'chat.completion.chunk' && chunk.model === 'mock-gpt-4o-mini')).toBe(true);
  });

  it('cuts chunks between code points, never inside an emoji', async () => {
    const events = await stream({}, { 'x-mock-content': encodeURIComponent('a😀b😀'), 'x-mock-chunk-size': '1' });
    const pieces = events.filter(isChunk).map((chunk) => chunk.choices[0]?.delta.content).filter((piece) => piece);
    expect(pieces).toEqual(['a', '😀', 'b', '😀']);
  });

  it('adds usage: null to every chunk and a final usage chunk with empty choices when include_usage is set', async () => {
    const events = await stream({ stream_options: { include_usage: true } });
    expect(events.at(-1)).toBe('[DONE]');
    const typed = events.slice(0, -1).filter(isChunk);
    expect(typed).toHaveLength(1 + 5 + 1 + 1);
    expect(typed.slice(0, 7).every((chunk) => chunk.usage === null)).toBe(true);
    const usageChunk = typed[7];
    expect(usageChunk?.choices).toEqual([]);
    const promptTokens = estimateTokens('You are terse.') + 3 + estimateTokens(prompt) + 3;
    expect(usageChunk?.usage).toEqual({
      prompt_tokens: promptTokens,
      completion_tokens: estimateTokens(content),
      total_tokens: promptTokens + estimateTokens(content),
    });
  });

  it('does not send the usage chunk for include_usage: false', async () => {
    const events = await stream({ stream_options: { include_usage: false } });
    expect(events.filter(isChunk).some((chunk) => chunk.choices.length === 0)).toBe(false);
  });

  it('never echoes the prompt in a stream', async () => {
    const response = await post('/v1/chat/completions', { ...chatRequest, stream: true });
    expect(await response.text()).not.toContain('zebra-quokka-platypus');
  });

  it('defaults to chunks of 8 characters', async () => {
    const response = await post('/v1/chat/completions', { ...chatRequest, stream: true }, { 'x-mock-content': content });
    const deltas = sseData(await response.text())
      .filter(isChunk)
      .map((chunk) => chunk.choices[0]?.delta.content)
      .filter((delta): delta is string => delta !== undefined && delta !== '');
    expect(deltas).toEqual(['abcdefgh', 'ijklmnop', 'qrstuvw']);
  });
});

describe('embeddings', () => {
  interface Embeddings<T> {
    object: string;
    model: string;
    data: Array<{ object: string; index: number; embedding: T }>;
    usage: { prompt_tokens: number; total_tokens: number };
  }

  it('returns deterministic unit vectors as floats', async () => {
    const first = (await (await post('/v1/embeddings', { model: 'mock-embedding-small', input: 'hello world' })).json()) as Embeddings<number[]>;
    const again = (await (await post('/v1/embeddings', { model: 'mock-embedding-small', input: 'hello world' })).json()) as Embeddings<number[]>;
    expect(first.object).toBe('list');
    expect(first.model).toBe('mock-embedding-small');
    expect(first.data).toHaveLength(1);
    expect(first.data[0]).toMatchObject({ object: 'embedding', index: 0 });
    const vector = first.data[0]?.embedding ?? [];
    expect(vector).toHaveLength(8);
    expect(Math.hypot(...vector)).toBeCloseTo(1, 5);
    expect(again.data[0]?.embedding).toEqual(vector);
    expect(first.usage).toEqual({ prompt_tokens: estimateTokens('hello world'), total_tokens: estimateTokens('hello world') });
  });

  it('embeds a string in an array exactly as the bare string, as OpenAI does', async () => {
    const bare = (await (await post('/v1/embeddings', { model: 'e', input: 'abcd' })).json()) as Embeddings<number[]>;
    const listed = (await (await post('/v1/embeddings', { model: 'e', input: ['abcd'] })).json()) as Embeddings<number[]>;
    expect(listed.data[0]?.embedding).toEqual(bare.data[0]?.embedding);
    expect(listed.usage).toEqual(bare.usage);
  });

  it('honours dimensions and gives different inputs different vectors', async () => {
    const body = (await (await post('/v1/embeddings', { model: 'e', input: ['a', 'b'], dimensions: 20 })).json()) as Embeddings<number[]>;
    expect(body.data.map((item) => item.index)).toEqual([0, 1]);
    expect(body.data[0]?.embedding).toHaveLength(20);
    expect(body.data[1]?.embedding).toHaveLength(20);
    expect(body.data[0]?.embedding).not.toEqual(body.data[1]?.embedding);
  });

  it('encodes base64 as little-endian float32 equal to the float response for the same input', async () => {
    const request = { model: 'e', input: 'the same input', dimensions: 16 };
    const floats = (await (await post('/v1/embeddings', request)).json()) as Embeddings<number[]>;
    const base64 = (await (await post('/v1/embeddings', { ...request, encoding_format: 'base64' })).json()) as Embeddings<string>;
    const encoded = base64.data[0]?.embedding;
    expect(typeof encoded).toBe('string');
    const bytes = Buffer.from(encoded ?? '', 'base64');
    expect(bytes.length).toBe(16 * 4);
    // Copy into an aligned buffer before viewing it as float32.
    const aligned = new Uint8Array(bytes).buffer;
    const decoded = Array.from(new Float32Array(aligned));
    expect(decoded).toEqual(floats.data[0]?.embedding);
  });

  it('rejects a missing input with 400', async () => {
    const response = await post('/v1/embeddings', { model: 'e' });
    expect(response.status).toBe(400);
    expect(((await response.json()) as ErrorEnvelope).error.message).toContain('input');
  });
});

describe('GET /v1/models', () => {
  it('lists the mock models in OpenAI shape', async () => {
    const response = await fetch(`${mock.url}/v1/models`);
    expect(response.status).toBe(200);
    const body = (await response.json()) as { object: string; data: Array<{ id: string; object: string; owned_by: string }> };
    expect(body.object).toBe('list');
    expect(body.data.map((model) => model.id)).toEqual(['mock-gpt-4o-mini', 'mock-gpt-4o', 'mock-embedding-small']);
    expect(body.data.every((model) => model.object === 'model' && model.owned_by === 'portcullis-mock')).toBe(true);
  });
});

describe('fault controls', () => {
  it('x-mock-status 500 answers a server_error envelope', async () => {
    const response = await post('/v1/chat/completions', chatRequest, { 'x-mock-status': '500' });
    expect(response.status).toBe(500);
    expect(response.headers.get('content-type')).toBe('application/json');
    expect(response.headers.get('retry-after')).toBeNull();
    const body = (await response.json()) as ErrorEnvelope;
    expect(body.error).toEqual({ message: 'Mock error 500 on demand.', type: 'server_error', param: null, code: 'server_error' });
  });

  it('x-mock-status 429 answers a rate-limit envelope with retry-after', async () => {
    const response = await post('/v1/chat/completions', { ...chatRequest, stream: true }, { 'x-mock-status': '429' });
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(((await response.json()) as ErrorEnvelope).error).toMatchObject({ type: 'rate_limit_exceeded', code: 'rate_limit_exceeded' });
  });

  it('x-mock-error-format text answers plain text', async () => {
    const response = await post('/v1/embeddings', { model: 'e', input: 'x' }, { 'x-mock-status': '503', 'x-mock-error-format': 'text' });
    expect(response.status).toBe(503);
    expect(response.headers.get('content-type')).toBe('text/plain');
    expect(await response.text()).toBe('upstream exploded');
  });

  it('a 2xx x-mock-status is not a fault', async () => {
    const response = await post('/v1/chat/completions', chatRequest, { 'x-mock-status': '200' });
    expect(response.status).toBe(200);
    expect(((await response.json()) as ChatCompletion).object).toBe('chat.completion');
  });

  it('rejects malformed control headers with 400 naming the header', async () => {
    const cases: Array<[Record<string, string>, string]> = [
      [{ 'x-mock-chunk-size': 'lots' }, 'x-mock-chunk-size must be an integer'],
      [{ 'x-mock-chunk-size': '0' }, 'x-mock-chunk-size must be at least 1'],
      [{ 'x-mock-status': '99' }, 'x-mock-status must be at least 100'],
      [{ 'x-mock-first-byte-delay-ms': '-5' }, 'x-mock-first-byte-delay-ms must be an integer'],
      [{ 'x-mock-disconnect-after-chunks': '1.5' }, 'x-mock-disconnect-after-chunks must be an integer'],
      [{ 'x-mock-content': '%E0%A4%A' }, 'x-mock-content must be percent-encoded UTF-8'],
    ];
    for (const [headers, message] of cases) {
      const response = await post('/v1/chat/completions', chatRequest, headers);
      expect(response.status, JSON.stringify(headers)).toBe(400);
      expect(((await response.json()) as ErrorEnvelope).error.message, JSON.stringify(headers)).toBe(message);
    }
  });

  it('x-mock-disconnect-after-chunks cuts the stream before [DONE]', async () => {
    const response = await post('/v1/chat/completions', { ...chatRequest, stream: true }, {
      'x-mock-disconnect-after-chunks': '1',
      'x-mock-chunk-size': '4',
    });
    expect(response.status).toBe(200);
    let received = '';
    let failed = false;
    try {
      const reader = response.body?.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const next = await reader?.read();
        if (!next || next.done) break;
        received += decoder.decode(next.value, { stream: true });
      }
    } catch {
      failed = true;
    }
    // Either the body errors (the usual case: a chunked body cut short) or it ends without [DONE].
    expect(failed || !received.includes('[DONE]')).toBe(true);
    expect(received).not.toContain('[DONE]');
    expect(received).not.toContain('"finish_reason":"stop"');
    // The role chunk and the first content chunk (events 0 and 1) were sent before the cut.
    expect(received).toContain('"role":"assistant"');
  });

  it('x-mock-first-byte-delay-ms delays the answer', async () => {
    const delay = 120;
    const started = performance.now();
    const response = await post('/v1/chat/completions', chatRequest, { 'x-mock-first-byte-delay-ms': String(delay) });
    const elapsed = performance.now() - started;
    expect(response.status).toBe(200);
    expect(elapsed).toBeGreaterThanOrEqual(delay - 5);
    await response.text();
  });
});

describe('request log and routing', () => {
  it('records /v1/ requests with method, path, headers and body, available in-process and over HTTP', async () => {
    const payload = JSON.stringify(chatRequest);
    await (await post('/v1/chat/completions?trace=1', payload, { 'x-test-marker': 'abc' })).text();
    await (await fetch(`${mock.url}/v1/models`)).text();
    const recorded = mock.requests();
    expect(recorded).toHaveLength(2);
    expect(recorded[0]).toMatchObject({ method: 'POST', path: '/v1/chat/completions', body: payload });
    expect(recorded[0]?.headers['x-test-marker']).toBe('abc');
    expect(recorded[0]?.headers['content-type']).toBe('application/json');
    expect(typeof recorded[0]?.receivedAt).toBe('number');
    expect(recorded[1]).toMatchObject({ method: 'GET', path: '/v1/models', body: '' });

    const overHttp = await fetch(`${mock.url}/__mock/requests`);
    expect(overHttp.status).toBe(200);
    const listed = (await overHttp.json()) as RecordedRequest[];
    expect(listed.map((entry) => [entry.method, entry.path])).toEqual([
      ['POST', '/v1/chat/completions'],
      ['GET', '/v1/models'],
    ]);
    // Reading the log is not itself recorded.
    expect(mock.requests()).toHaveLength(2);
  });

  it('returns a copy from requests() and clears on clearRequests() and DELETE', async () => {
    await (await post('/v1/chat/completions', chatRequest)).text();
    const snapshot = mock.requests();
    snapshot.length = 0;
    expect(mock.requests()).toHaveLength(1);
    mock.clearRequests();
    expect(mock.requests()).toEqual([]);
    await (await post('/v1/chat/completions', chatRequest)).text();
    const deleted = await fetch(`${mock.url}/__mock/requests`, { method: 'DELETE' });
    expect(await deleted.json()).toEqual([]);
    expect(mock.requests()).toEqual([]);
  });

  it('does not record requests outside /v1/', async () => {
    await (await post('/other', chatRequest)).text();
    expect(mock.requests()).toEqual([]);
  });

  it('answers invalid JSON with 400', async () => {
    const response = await post('/v1/chat/completions', '{"model": "m", "messages": [');
    expect(response.status).toBe(400);
    const body = (await response.json()) as ErrorEnvelope;
    expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' });
    expect(body.error.message).toContain('could not parse the JSON body');
  });

  it('answers unknown paths and wrong methods with 404', async () => {
    const unknown = await post('/v1/completions', chatRequest);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as ErrorEnvelope).error).toMatchObject({ code: 'not_found', message: 'Invalid URL (POST /v1/completions)' });
    const wrongMethod = await fetch(`${mock.url}/v1/chat/completions`);
    expect(wrongMethod.status).toBe(404);
    await wrongMethod.text();
    const outside = await fetch(`${mock.url}/nothing-here`);
    expect(outside.status).toBe(404);
    await outside.text();
  });
});

describe('startMockLlm options', () => {
  it('binds 127.0.0.1 on an ephemeral port and reports it in url', () => {
    expect(mock.port).toBeGreaterThan(0);
    expect(mock.url).toBe(`http://127.0.0.1:${mock.port}`);
  });

  it('honours defaultChunkSize and requestLogLimit', async () => {
    const small = await startMockLlm({ port: 0, defaultChunkSize: 3, requestLogLimit: 2 });
    try {
      const response = await fetch(`${small.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-mock-content': 'abcdefg' },
        body: JSON.stringify({ ...chatRequest, stream: true }),
      });
      const deltas = sseData(await response.text())
        .filter(isChunk)
        .map((chunk) => chunk.choices[0]?.delta.content)
        .filter((delta): delta is string => delta !== undefined && delta !== '');
      expect(deltas).toEqual(['abc', 'def', 'g']);
      for (let i = 0; i < 3; i += 1) await (await fetch(`${small.url}/v1/models?n=${i}`)).text();
      expect(small.requests()).toHaveLength(2);
      expect(small.requests().every((entry) => entry.method === 'GET')).toBe(true);
    } finally {
      await small.close();
    }
  });
});
