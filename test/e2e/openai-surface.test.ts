import OpenAI from 'openai';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clientFor, LIMITED_KEY, rawRequest, TEST_KEY, useStack, type Stack } from '../support/stack.ts';

const running = useStack();
let stack: Stack;
let client: OpenAI;

beforeAll(() => {
  ({ stack, client } = running);
});
beforeEach(() => {
  stack.mock.clearRequests();
  stack.accessLog.records.length = 0;
});

function lastRecord() {
  const record = stack.accessLog.records.at(-1);
  if (!record) throw new Error('no access record was written');
  return record;
}

describe('chat completions through Envoy', () => {
  it('routes to the upstream model, injects nothing of the caller, and meters usage', async () => {
    const completion = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello to the gateway' }] },
      { headers: { 'x-api-key': 'sk-a-provider-key-the-app-should-not-have', 'OpenAI-Organization': 'org-app' } },
    );
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('mock-gpt-4o-mini');
    expect(completion.choices[0]?.message.content).toMatch(/^Mock reply #\d+ from mock-gpt-4o-mini: 5 words received\.$/);
    expect(completion.usage?.total_tokens).toBeGreaterThan(0);

    const [upstream] = stack.mock.requests();
    expect(upstream?.path).toBe('/v1/chat/completions');
    expect(JSON.parse(upstream?.body ?? '{}').model).toBe('mock-gpt-4o-mini');
    // The caller's virtual key never reaches the provider, nor does the internal routing header.
    expect(upstream?.headers.authorization).toBeUndefined();
    expect(upstream?.headers['x-api-key']).toBeUndefined();
    expect(upstream?.headers['openai-organization']).toBeUndefined();
    expect(upstream?.headers['x-portcullis-upstream']).toBeUndefined();
    expect(upstream?.headers['content-length']).toBe(String(Buffer.byteLength(upstream?.body ?? '')));

    const record = lastRecord();
    expect(record).toMatchObject({
      key_id: 'test-team',
      operation: 'chat.completions',
      model_asked: 'gpt-4o-mini',
      model_served: 'mock-gpt-4o-mini',
      upstream: 'mock',
      region: 'test',
      status: 200,
      outcome: 'ok',
      stream: false,
    });
    expect(record.request_id).toBeTruthy();
    expect(record.tokens).toEqual({
      input: completion.usage?.prompt_tokens,
      cached_input: 0,
      output: completion.usage?.completion_tokens,
      reasoning: 0,
      total: completion.usage?.total_tokens,
    });
    expect(JSON.stringify(record)).not.toContain('Say hello');
  });

  it('streams SSE chunk by chunk, meters usage and hides the usage chunk the caller did not ask for', async () => {
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o', messages: [{ role: 'user', content: 'stream please' }], stream: true },
      { headers: { 'x-mock-chunk-size': '3', 'x-mock-chunk-delay-ms': '5' } },
    );
    let content = '';
    let chunks = 0;
    let sawUsage = false;
    for await (const chunk of stream) {
      chunks += 1;
      content += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) sawUsage = true;
      expect(chunk.choices.length).toBe(1);
    }
    expect(content).toMatch(/^Mock reply #\d+ from mock-gpt-4o: 2 words received\.$/);
    expect(chunks).toBeGreaterThan(10);
    expect(sawUsage).toBe(false);
    const upstreamBody = JSON.parse(stack.mock.requests()[0]?.body ?? '{}');
    expect(upstreamBody.stream_options).toEqual({ include_usage: true });
    const record = lastRecord();
    expect(record.stream).toBe(true);
    expect(record.tokens?.output).toBeGreaterThan(0);
    expect(record.ttft_ms).not.toBeNull();
    const metrics = await (await fetch(`${stack.gateway?.admin.url}/metrics`)).text();
    expect(metrics).toMatch(/portcullis_time_to_first_token_seconds_count\{model="gpt-4o"\} [1-9]/);
    expect(metrics).toMatch(/portcullis_upstream_response_seconds_count\{upstream="mock"\} [1-9]/);
    expect(metrics).toMatch(/portcullis_tokens_total\{model="gpt-4o",type="output"\} [1-9]/);
  });

  it('keeps the usage chunk when the caller asked for it', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o',
      messages: [{ role: 'user', content: 'with usage' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage?.total_tokens).toBeGreaterThan(0);
    expect(lastRecord().tokens?.total).toBe(usage?.total_tokens);
  });

  it('passes multi-byte content split across chunks intact', async () => {
    const text = 'Grüße, 世界! 😀 ça va? '.repeat(5);
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o', messages: [{ role: 'user', content: 'unicode' }], stream: true },
      { headers: { 'x-mock-content': encodeURIComponent(text), 'x-mock-chunk-size': '1' } },
    );
    let content = '';
    for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? '';
    expect(content).toBe(text);
  });

  it('records the exchange when the client walks away mid-stream', async () => {
    const controller = new AbortController();
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o', messages: [{ role: 'user', content: 'long answer' }], stream: true },
      { headers: { 'x-mock-chunk-size': '1', 'x-mock-chunk-delay-ms': '20' }, signal: controller.signal },
    );
    let received = 0;
    // The SDK ends the iteration quietly or with an abort error, depending on timing: either is a walk-away.
    await (async () => {
      for await (const chunk of stream) {
        received += 1;
        if (chunk.choices[0]?.delta.content) controller.abort();
      }
    })().catch(() => undefined);
    expect(received).toBeLessThan(20); // of about 50 chunks: the client left early
    await expect.poll(() => stack.accessLog.records.length, { timeout: 5000 }).toBe(1);
    expect(lastRecord()).toMatchObject({ stream: true, status: 200, model_asked: 'gpt-4o' });
    expect(lastRecord().outcome).toMatch(/cancelled|incomplete/);
  });

  it('records an interrupted stream when the upstream disconnects mid-stream', async () => {
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o', messages: [{ role: 'user', content: 'cut me off' }], stream: true },
      { headers: { 'x-mock-disconnect-after-chunks': '2', 'x-mock-chunk-size': '2' } },
    );
    await expect(async () => {
      for await (const chunk of stream) void chunk;
    }).rejects.toThrow();
    await expect.poll(() => stack.accessLog.records.length).toBe(1);
    expect(lastRecord().outcome).toBe('incomplete');
  });
});

describe('embeddings and models', () => {
  it('creates embeddings through the mapped model', async () => {
    const result = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    expect(result.data).toHaveLength(2);
    expect(result.data[0]?.embedding).toHaveLength(8);
    expect(result.model).toBe('mock-embedding-small');
    expect(lastRecord()).toMatchObject({ operation: 'embeddings', model_asked: 'text-embedding-3-small', status: 200 });
    expect(lastRecord().tokens?.input).toBeGreaterThan(0);
  });

  it('returns the request id that the access record carries', async () => {
    const response = await rawRequest(stack, '/v1/models', { method: 'GET' });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-request-id')).toBe(lastRecord().request_id);
  });

  it('answers /v1/models itself with the models this caller may use', async () => {
    const models = await client.models.list();
    expect(models.data.map((model) => model.id).sort()).toEqual(['gpt-4o', 'gpt-4o-mini', 'gpt-offline', 'text-embedding-3-small']);
    const limited = clientFor(stack, LIMITED_KEY);
    const visible = await limited.models.list();
    expect(visible.data.map((model) => model.id)).toEqual(['gpt-4o-mini']);
    expect(stack.mock.requests()).toHaveLength(0);
  });
});

describe('bad input gets OpenAI-shaped errors', () => {
  it('401 without a key and with a wrong key', async () => {
    const anonymous = clientFor(stack, 'pc-not-a-real-key');
    await expect(anonymous.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const missing = await rawRequest(stack, '/v1/models', { method: 'GET', headers: { authorization: '' } });
    expect(missing.status).toBe(401);
    expect(missing.json).toMatchObject({ error: { code: 'invalid_api_key' } });
  });

  it('400 for invalid JSON and a missing model, 404 model_not_found', async () => {
    const invalid = await rawRequest(stack, '/v1/chat/completions', { body: '{"model": "gpt-4o",' });
    expect(invalid.status).toBe(400);
    expect(invalid.json).toMatchObject({ error: { type: 'invalid_request_error', code: 'invalid_json' } });

    const missingModel = await rawRequest(stack, '/v1/chat/completions', { body: JSON.stringify({ messages: [] }) });
    expect(missingModel.status).toBe(400);
    expect(missingModel.json).toMatchObject({ error: { code: 'missing_model', param: 'model' } });

    const error = await client.chat.completions
      .create({ model: 'gpt-5-imaginary', messages: [{ role: 'user', content: 'hi' }] })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');

    const limited = clientFor(stack, LIMITED_KEY);
    await expect(
      limited.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    ).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    expect(stack.mock.requests()).toHaveLength(0);
  });

  it('400 for a schema violation, naming the parameter', async () => {
    const response = await rawRequest(stack, '/v1/chat/completions', { body: JSON.stringify({ model: 'gpt-4o', messages: 'hi' }) });
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ error: { param: 'messages' } });
  });

  it('413 over the body limit, whether declared or chunked', async () => {
    const big = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(70 * 1024) }] });
    const declared = await rawRequest(stack, '/v1/chat/completions', { body: big });
    expect(declared.status).toBe(413);
    expect(declared.json).toMatchObject({ error: { code: 'request_too_large' } });

    const huge = 'x'.repeat(200 * 1024);
    const chunked = await fetch(`${stack.baseUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' },
      body: new ReadableStream({
        start(controller) {
          controller.enqueue(new TextEncoder().encode(`{"model":"gpt-4o","messages":[{"role":"user","content":"${huge}"}]}`));
          controller.close();
        },
      }),
      duplex: 'half',
    } as RequestInit);
    expect(chunked.status).toBe(413);
    expect(await chunked.json()).toMatchObject({ error: { code: 'request_too_large' } });
    expect(stack.mock.requests()).toHaveLength(0);
  });

  it('415 for a wrong content type, 404 for an unknown path, 405 for a wrong method', async () => {
    const form = await rawRequest(stack, '/v1/chat/completions', {
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'model=gpt-4o',
    });
    expect(form.status).toBe(415);
    expect(form.json).toMatchObject({ error: { code: 'unsupported_media_type' } });

    const unknown = await rawRequest(stack, '/v1/assistants', { body: '{}' });
    expect(unknown.status).toBe(404);
    expect(unknown.json).toMatchObject({ error: { type: 'invalid_request_error', code: 'unknown_url' } });

    const wrongMethod = await rawRequest(stack, '/v1/chat/completions', { method: 'GET' });
    expect(wrongMethod.status).toBe(405);
    expect(stack.mock.requests()).toHaveLength(0);
  });

  it('upstream errors reach the SDK as typed errors in OpenAI shape', async () => {
    const rateLimited = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-status': '429' } })
      .catch((caught: unknown) => caught);
    expect(rateLimited).toBeInstanceOf(OpenAI.RateLimitError);

    const text = await rawRequest(stack, '/v1/chat/completions', {
      headers: { 'x-mock-status': '502', 'x-mock-error-format': 'text' },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(text.status).toBe(502);
    expect(text.headers.get('content-type')).toBe('application/json');
    expect(text.json).toEqual({
      error: { message: 'The upstream provider answered with HTTP 502.', type: 'server_error', param: null, code: 'upstream_502' },
    });
    expect(text.text).not.toContain('exploded');
    expect(lastRecord()).toMatchObject({ status: 502, outcome: 'upstream_error', error_code: 'upstream_502' });
  });

  it('a provider answering 503 in OpenAI shape passes through as it is', async () => {
    const unavailable = await rawRequest(stack, '/v1/chat/completions', {
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
      headers: { 'x-mock-status': '503' },
    });
    expect(unavailable.status).toBe(503);
    expect(unavailable.json).toMatchObject({ error: { type: 'server_error', message: 'Mock error 503 on demand.' } });
  });

  it('an unreachable provider is a 503 upstream_unavailable in OpenAI shape', async () => {
    const error = await client.chat.completions
      .create({ model: 'gpt-offline', messages: [{ role: 'user', content: 'hi' }] })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_unavailable');
    expect(lastRecord()).toMatchObject({ status: 503, upstream: 'unreachable', outcome: 'upstream_error' });
  });
});

describe('Envoy sees what Portcullis decided', () => {
  it('receives dynamic metadata in the portcullis namespace', async () => {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'metadata' }] });
    const requestId = lastRecord().request_id;
    // Envoy flushes its file access log on an interval: poll for the line.
    await expect
      .poll(() => stack.envoyAccessLog().find((entry) => entry.request_id === requestId), { timeout: 10_000 })
      .toMatchObject({ key_id: 'test-team', model: 'gpt-4o-mini', upstream: 'mock', status: 200 });
  });

  it('a client cannot pick the upstream by sending the routing header', async () => {
    const response = await rawRequest(stack, '/v1/models', { method: 'GET', headers: { 'x-portcullis-upstream': 'mock' } });
    expect(response.status).toBe(200);
    expect(stack.mock.requests()).toHaveLength(0);
  });
});
