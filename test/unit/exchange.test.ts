import { describe, expect, it } from 'vitest';
import type { AccessRecord } from '../../src/access/record.ts';
import { parseConfig } from '../../src/config/load.ts';
import { Exchange } from '../../src/extproc/exchange.ts';
import type { ProcessingRequest } from '../../src/extproc/messages.ts';
import { buildGatewayContext } from '../../src/gateway/gateway.ts';
import { hashKey } from '../../src/identity/virtual-keys.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { noTelemetry, type Clock, type Telemetry } from '../../src/telemetry/telemetry.ts';

const KEY = 'pc-unit';
const gateway = buildGatewayContext(
  parseConfig({
    limits: { max_request_body_bytes: 1000 },
    upstreams: [{ name: 'up', base_url: 'https://api.example/v1', schema: 'openai', credential: { source: 'env', name: 'UP_KEY' } }],
    models: [{ name: 'public', upstream: 'up', upstream_model: 'private-2025' }],
    keys: [{ id: 'unit', hash: hashKey(KEY) }],
  }),
  { UP_KEY: 'sk-provider' },
);

function harness() {
  const records: AccessRecord[] = [];
  let now = 0;
  const clock: Clock = { monotonicMs: () => (now += 1), now: () => new Date(0) };
  const telemetry: Telemetry = { ...noTelemetry, exchangeFinished: (record) => records.push(record) };
  return { exchange: new Exchange(gateway, telemetry, clock, silentLogger), records };
}

const headers = (values: Record<string, string>) => ({
  headers: Object.entries(values).map(([key, value]) => ({ key, rawValue: Buffer.from(value) })),
});
const requestHeaders = (values: Record<string, string>, endOfStream = false): ProcessingRequest => ({
  request: 'requestHeaders',
  requestHeaders: { headers: headers(values), endOfStream },
});
const chat = (extra: Record<string, string> = {}) =>
  requestHeaders({ ':method': 'POST', ':path': '/v1/chat/completions', authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...extra });
const body = (value: unknown, endOfStream = true): ProcessingRequest => ({
  request: 'requestBody',
  requestBody: { body: Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)), endOfStream },
});

function immediateStatus(response: ReturnType<Exchange['process']>): unknown {
  return response?.immediateResponse?.status?.code;
}

describe('the exchange decides', () => {
  it('authenticates before anything else, so unknown paths need a key too', () => {
    const { exchange, records } = harness();
    expect(immediateStatus(exchange.process(requestHeaders({ ':method': 'POST', ':path': '/v1/nowhere' })))).toBe(401);
    expect(exchange.done).toBe(true);
    expect(records).toHaveLength(1);
  });

  it('rewrites model, path and credential, and removes nothing the provider needs', () => {
    const { exchange } = harness();
    exchange.process(chat());
    const response = exchange.process(body({ model: 'public', messages: [{ role: 'user', content: 'hi' }] }));
    const common = response?.requestBody?.response;
    const set = Object.fromEntries((common?.headerMutation?.setHeaders ?? []).map((option) => [option.header?.key, String(option.header?.rawValue)]));
    expect(set).toMatchObject({
      'x-portcullis-upstream': 'up',
      ':path': '/v1/chat/completions',
      authorization: 'Bearer sk-provider',
      'accept-encoding': 'identity',
    });
    // Credentials a caller might send are dropped; the gateway's own authorization replaces the caller's.
    expect(common?.headerMutation?.removeHeaders).toEqual(
      expect.arrayContaining(['x-api-key', 'api-key', 'openai-organization', 'proxy-authorization']),
    );
    expect(common?.headerMutation?.removeHeaders).not.toContain('authorization');
    expect(JSON.parse(String(common?.bodyMutation?.body)).model).toBe('private-2025');
  });

  it('keeps the caller\'s query string on the rewritten path', () => {
    const { exchange } = harness();
    exchange.process(chat({ ':path': '/v1/chat/completions?api-version=2024-10-21' }));
    const response = exchange.process(body({ model: 'public', messages: [{ role: 'user', content: 'hi' }] }));
    const path = response?.requestBody?.response?.headerMutation?.setHeaders?.find((option) => option.header?.key === ':path');
    expect(String(path?.header?.rawValue)).toBe('/v1/chat/completions?api-version=2024-10-21');
  });

  it('strips a client-supplied routing header at request headers', () => {
    const { exchange } = harness();
    const response = exchange.process(chat({ 'x-portcullis-upstream': 'up' }));
    expect(response?.requestHeaders?.response?.headerMutation?.removeHeaders).toEqual(['x-portcullis-upstream']);
  });

  it.each([
    ['a declared body over the limit', chat({ 'content-length': '5000' }), 413],
    ['a form body', chat({ 'content-type': 'text/plain' }), 415],
    ['no body at all', requestHeaders({ ':method': 'POST', ':path': '/v1/embeddings', authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, true), 400],
    ['a wrong method', requestHeaders({ ':method': 'DELETE', ':path': '/v1/models', authorization: `Bearer ${KEY}` }), 405],
  ])('rejects %s at request headers', (_name, message, status) => {
    const { exchange } = harness();
    expect(immediateStatus(exchange.process(message))).toBe(status);
  });

  it.each([
    ['invalid JSON', '{"model":', 400, 'invalid_json'],
    ['a JSON array', '[]', 400, 'invalid_json'],
    ['no model', { messages: [] }, 400, 'missing_model'],
    ['no messages', { model: 'public' }, 400, 'invalid_request'],
    ['an unknown model', { model: 'nope', messages: [{ role: 'user', content: 'x' }] }, 404, 'model_not_found'],
  ])('rejects %s in the body', (_name, value, status, code) => {
    const { exchange, records } = harness();
    exchange.process(chat());
    const response = exchange.process(body(value));
    expect(immediateStatus(response)).toBe(status);
    expect(JSON.parse(String(response?.immediateResponse?.body)).error.code).toBe(code);
    expect(records[0]?.error_code).toBe(code);
  });

  it('enforces the body limit on bodies that arrive in pieces', () => {
    const { exchange } = harness();
    exchange.process(chat());
    expect(exchange.process(body('x'.repeat(600), false))?.requestBody?.response?.bodyMutation).toEqual({ clearBody: true });
    expect(immediateStatus(exchange.process(body('x'.repeat(600), true)))).toBe(413);
  });

  it('writes exactly one record however the exchange ends', () => {
    const { exchange, records } = harness();
    exchange.process(chat());
    exchange.process(body({ model: 'public', messages: [{ role: 'user', content: 'hi' }] }));
    exchange.interrupt('cancelled');
    exchange.interrupt('incomplete');
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({ outcome: 'cancelled', model_asked: 'public', upstream: 'up' });
  });

  it('records upstream status, usage and latency for a buffered response', () => {
    const { exchange, records } = harness();
    exchange.process(chat());
    exchange.process(body({ model: 'public', messages: [{ role: 'user', content: 'hi' }] }));
    exchange.process({ request: 'responseHeaders', responseHeaders: { headers: headers({ ':status': '200', 'content-type': 'application/json' }) } });
    const usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { cached_tokens: 4 }, completion_tokens_details: { reasoning_tokens: 2 } };
    const response = exchange.process({ request: 'responseBody', responseBody: { body: Buffer.from(JSON.stringify({ model: 'private-2025-01', usage })), endOfStream: true } });
    expect(response?.responseBody?.response).toBeUndefined();
    expect(exchange.done).toBe(true);
    expect(records[0]).toMatchObject({
      status: 200,
      outcome: 'ok',
      model_served: 'private-2025-01',
      tokens: { input: 10, cached_input: 4, output: 5, reasoning: 2, total: 15 },
    });
    expect(records[0]?.latency_ms).toBeGreaterThan(0);
  });
});
