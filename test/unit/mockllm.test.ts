import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockLlm, type MockLlm } from '../../src/mockllm/server.ts';

let mock: MockLlm;
beforeAll(async () => {
  mock = await startMockLlm({ port: 0 });
});
afterAll(async () => {
  await mock.close();
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${mock.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
const chat = { model: 'm', messages: [{ role: 'user', content: 'one two three secret-word' }] };

interface ChatBody {
  choices: Array<{ message: { content: string } }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}
interface EmbeddingsBody<T> {
  data: Array<{ embedding: T }>;
}

function events(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((event) => event.replace(/^data: /, ''))
    .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
}

describe('mock-llm', () => {
  it('answers deterministically, with usage, without echoing the prompt', async () => {
    const response = await post('/v1/chat/completions', chat);
    const body = (await response.json()) as ChatBody;
    expect(body.choices[0]?.message.content).toMatch(/^Mock reply #\d+ from m: 4 words received\.$/);
    expect(JSON.stringify(body)).not.toContain('secret-word');
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
    expect(mock.requests().at(-1)?.path).toBe('/v1/chat/completions');
  });

  it('streams in OpenAI order, with the usage chunk only when asked', async () => {
    const plain = events(await (await post('/v1/chat/completions', { ...chat, stream: true }, { 'x-mock-chunk-size': '4' })).text());
    expect(plain.at(-1)).toBe('[DONE]');
    expect(plain.some((event) => typeof event === 'object' && event !== null && 'usage' in event)).toBe(false);
    const withUsage = events(await (await post('/v1/chat/completions', { ...chat, stream: true, stream_options: { include_usage: true } })).text());
    expect(withUsage.at(-2)).toMatchObject({ choices: [], usage: { total_tokens: expect.any(Number) } });
    expect(withUsage[0]).toMatchObject({ choices: [{ delta: { role: 'assistant' } }], usage: null });
  });

  it('embeds deterministically, as floats or base64 float32', async () => {
    const floats = (await (await post('/v1/embeddings', { model: 'e', input: 'hello' })).json()) as EmbeddingsBody<number[]>;
    const base64 = (await (await post('/v1/embeddings', { model: 'e', input: 'hello', encoding_format: 'base64' })).json()) as EmbeddingsBody<string>;
    const bytes = Buffer.from(base64.data[0]?.embedding ?? '', 'base64');
    const decoded = Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4));
    expect(decoded).toEqual(floats.data[0]?.embedding);
    expect(floats.data[0]?.embedding).toHaveLength(8);
  });

  it('fails on demand: status, text errors, bad controls', async () => {
    const limited = await post('/v1/chat/completions', chat, { 'x-mock-status': '429' });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    const text = await post('/v1/chat/completions', chat, { 'x-mock-status': '500', 'x-mock-error-format': 'text' });
    expect(await text.text()).toBe('upstream exploded');
    expect((await post('/v1/chat/completions', chat, { 'x-mock-chunk-size': 'lots' })).status).toBe(400);
    expect((await post('/v1/unknown', chat)).status).toBe(404);
  });

  it('cuts a stream mid-way on demand', async () => {
    const response = await post('/v1/chat/completions', { ...chat, stream: true }, { 'x-mock-disconnect-after-chunks': '1' });
    await expect(response.text()).rejects.toThrow();
  });
});

describe('mock-llm timing controls', () => {
  it('delays the first byte by x-mock-first-byte-delay-ms', async () => {
    const started = performance.now();
    const response = await post('/v1/chat/completions', chat, { 'x-mock-first-byte-delay-ms': '150' });
    expect(response.status).toBe(200);
    expect(performance.now() - started).toBeGreaterThanOrEqual(145);
  });
});
