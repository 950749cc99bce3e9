import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAccessLog } from '../../src/access/record.ts';
import { parseConfig } from '../../src/config/load.ts';
import { startGateway, type RunningGateway } from '../../src/gateway/gateway.ts';
import type { ProcessingResponse__Output } from '../../src/generated/envoy/service/ext_proc/v3/ProcessingResponse.ts';
import { hashKey } from '../../src/identity/virtual-keys.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { FakeEnvoy, headerMap, type FakeEnvoyStream } from '../support/extproc-client.ts';

/*
 * The protocol conformance suite: plays Envoy against the real gRPC server, one case per rule in
 * shared/design.md section 5, for every processing mode Envoy can send.
 */

const KEY = 'pc-conformance-key';
const accessLog = new MemoryAccessLog();
let gateway: RunningGateway;
let envoy: FakeEnvoy;

const config = parseConfig({
  server: { extproc_address: '127.0.0.1:0', admin_address: '127.0.0.1:0', drain_timeout_ms: 3000 },
  limits: { max_request_body_bytes: 1024 * 1024, max_response_body_bytes: 8 * 1024 * 1024 },
  upstreams: [{ name: 'primary', base_url: 'http://127.0.0.1:9/openai/v1', schema: 'openai', region: 'eu' }],
  models: [{ name: 'gpt-4o', upstream: 'primary', upstream_model: 'gpt-4o-2024-08-06' }],
  keys: [{ id: 'conformance', hash: hashKey(KEY) }],
});

beforeAll(async () => {
  gateway = await startGateway(config, { accessLog, logger: silentLogger, processMetrics: false });
  envoy = new FakeEnvoy(gateway.extproc.address);
});
afterAll(async () => {
  envoy?.close();
  await gateway?.stop();
});

// Each exchange gets its own request id, so a case finds its access record even while records of cancelled
// exchanges from earlier cases are still arriving.
let requestSequence = 0;
let lastRequestId = '';
const recordOfLastExchange = () => accessLog.records.find((record) => record.request_id === lastRequestId);

const chatHeaders = (extra: Record<string, string> = {}) =>
  headerMap({
    ':method': 'POST',
    ':path': '/v1/chat/completions',
    ':authority': 'gateway.local',
    authorization: `Bearer ${KEY}`,
    'content-type': 'application/json',
    'x-request-id': (lastRequestId = `req-${++requestSequence}`),
    ...extra,
  });

const chatBody = (extra: Record<string, unknown> = {}) =>
  Buffer.from(JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], ...extra }));

function setHeaders(reply: ProcessingResponse__Output | undefined): Map<string, string> {
  const common = reply?.requestBody?.response ?? reply?.requestHeaders?.response ?? reply?.responseBody?.response ?? reply?.responseHeaders?.response;
  const map = new Map<string, string>();
  for (const option of common?.headerMutation?.setHeaders ?? []) {
    map.set(option.header?.key ?? '', option.header?.rawValue?.toString() ?? '');
  }
  return map;
}

/** Drives request headers and a buffered body; returns the stream positioned before the response. */
async function routedExchange(body = chatBody(), extraHeaders: Record<string, string> = {}): Promise<FakeEnvoyStream> {
  const stream = envoy.open();
  const headersReply = await stream.exchange({ requestHeaders: { headers: chatHeaders(extraHeaders) } });
  expect(headersReply.response).toBe('requestHeaders');
  const bodyReply = await stream.exchange({ requestBody: { body, endOfStream: true } });
  expect(bodyReply.response).toBe('requestBody');
  return stream;
}

describe('one reply per message, in order, of the matching type', () => {
  it('answers headers and a BUFFERED request body with a routing mutation and the new content-length', async () => {
    const stream = envoy.open();
    const headersReply = await stream.exchange({ requestHeaders: { headers: chatHeaders() } });
    expect(headersReply.response).toBe('requestHeaders');
    expect(headersReply.immediateResponse).toBeUndefined();

    const bodyReply = await stream.exchange({ requestBody: { body: chatBody(), endOfStream: true } });
    expect(bodyReply.response).toBe('requestBody');
    const common = bodyReply.requestBody?.response;
    const newBody = common?.bodyMutation?.body ?? Buffer.alloc(0);
    expect(JSON.parse(newBody.toString())).toMatchObject({ model: 'gpt-4o-2024-08-06' });
    const headers = setHeaders(bodyReply);
    expect(headers.get('x-portcullis-upstream')).toBe('primary');
    expect(headers.get(':path')).toBe('/openai/v1/chat/completions');
    expect(headers.get('content-length')).toBe(String(newBody.length));
    expect(common?.headerMutation?.removeHeaders).toContain('authorization');
    // clear_route_cache travels with the header mutation (Envoy ignores it otherwise).
    expect(common?.clearRouteCache).toBe(true);
    stream.cancel();
  });

  it('writes header values as raw_value only, with append as a BoolValue', async () => {
    const stream = await routedExchange();
    stream.cancel();
    const again = envoy.open();
    await again.exchange({ requestHeaders: { headers: chatHeaders() } });
    const reply = await again.exchange({ requestBody: { body: chatBody(), endOfStream: true } });
    for (const option of reply.requestBody?.response?.headerMutation?.setHeaders ?? []) {
      expect(option.header?.rawValue).toBeInstanceOf(Buffer);
      expect(option.header?.value ?? '').toBe('');
      expect(option.append).toEqual({ value: false });
      expect(option.appendAction ?? 'APPEND_IF_EXISTS_OR_ADD').toBe('APPEND_IF_EXISTS_OR_ADD');
    }
    again.cancel();
  });

  it('reads header values from raw_value and, for old Envoys, from value', async () => {
    for (const form of ['raw', 'value'] as const) {
      const stream = envoy.open();
      const reply = await stream.exchange({
        requestHeaders: { headers: headerMap({ ':method': 'GET', ':path': '/v1/models', authorization: `Bearer ${KEY}` }, form) },
      });
      expect(reply.response).toBe('immediateResponse');
      expect(reply.immediateResponse?.status?.code).toBe('OK');
      expect(JSON.parse(reply.immediateResponse?.body?.toString() ?? '{}').data[0].id).toBe('gpt-4o');
      await stream.ended;
    }
  });

  it('sends dynamic metadata under the portcullis namespace in proto-loader Struct form', async () => {
    const stream = envoy.open();
    await stream.exchange({ requestHeaders: { headers: chatHeaders() } });
    const reply = await stream.exchange({ requestBody: { body: chatBody(), endOfStream: true } });
    const fields = reply.dynamicMetadata?.fields?.portcullis?.structValue?.fields;
    expect(fields?.key_id?.stringValue).toBe('conformance');
    expect(fields?.upstream?.stringValue).toBe('primary');
    expect(fields?.model?.stringValue).toBe('gpt-4o');
    stream.cancel();
  });

  it('answers pipelined STREAMED response chunks one by one, in order', async () => {
    const stream = await routedExchange(chatBody({ stream: true }));
    const headersReply = await stream.exchange({
      responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) },
    });
    expect(headersReply.modeOverride?.responseBodyMode).toBe('STREAMED');
    const chunks = 40;
    for (let index = 0; index < chunks; index += 1) {
      const event = `data: {"choices":[{"index":0,"delta":{"content":"${index}"}}]}\n\n`;
      stream.send({ responseBody: { body: Buffer.from(event), endOfStream: false } });
    }
    stream.send({ responseBody: { body: Buffer.from('data: [DONE]\n\n'), endOfStream: true } });
    for (let index = 0; index <= chunks; index += 1) {
      const reply = await stream.next();
      expect(reply.response).toBe('responseBody');
    }
    await stream.ended;
    expect(stream.unread).toBe(0);
  });
});

describe('mode_override', () => {
  it('switches SSE responses to STREAMED with literal modes, only in the response-headers reply', async () => {
    const stream = await routedExchange(chatBody({ stream: true }));
    const reply = await stream.exchange({
      responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream; charset=utf-8' }) },
    });
    expect(reply.response).toBe('responseHeaders');
    expect(reply.modeOverride).toMatchObject({ responseBodyMode: 'STREAMED', responseTrailerMode: 'SKIP' });
    stream.cancel();
  });

  it('leaves JSON responses and streamed requests answered with an error BUFFERED', async () => {
    const plain = await routedExchange();
    const plainReply = await plain.exchange({
      responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) },
    });
    expect(plainReply.modeOverride).toBeUndefined();
    plain.cancel();

    const failing = await routedExchange(chatBody({ stream: true }));
    const failingReply = await failing.exchange({
      responseHeaders: { headers: headerMap({ ':status': '429', 'content-type': 'text/event-stream' }) },
    });
    expect(failingReply.modeOverride).toBeUndefined();
    failing.cancel();
  });
});

describe('STREAMED bodies: arbitrary chunk boundaries', () => {
  const events = [
    'data: {"id":"c","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"Hel"}}],"usage":null}\n\n',
    'data: {"id":"c","model":"gpt-4o-2024-08-06","choices":[{"index":0,"delta":{"content":"lo"}}],"usage":null}\n\n',
    'data: {"id":"c","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2,"total_tokens":9}}\n\n',
    'data: [DONE]\n\n',
  ];
  const stream = Buffer.from(events.join(''));

  async function replay(splits: number[], clientAskedUsage: boolean): Promise<string> {
    const body = chatBody({ stream: true, ...(clientAskedUsage ? { stream_options: { include_usage: true } } : {}) });
    const exchange = await routedExchange(body);
    await exchange.exchange({ responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) } });
    const bounds = [0, ...splits, stream.length];
    let output = '';
    for (let index = 0; index + 1 < bounds.length; index += 1) {
      const chunk = stream.subarray(bounds[index], bounds[index + 1]);
      const last = index + 2 === bounds.length;
      const reply = await exchange.exchange({ responseBody: { body: chunk, endOfStream: last } });
      expect(reply.response).toBe('responseBody');
      const mutation = reply.responseBody?.response?.bodyMutation;
      output += mutation ? (mutation.body ?? Buffer.alloc(0)).toString() : chunk.toString();
    }
    await exchange.ended;
    return output;
  }

  it('strips the usage chunk the gateway added, whatever the split, and meters it', async () => {
    const expected = [events[0], events[1], events[3]].join('');
    for (let split = 1; split < stream.length; split += 7) {
      expect(await replay([split], false)).toBe(expected);
      expect(recordOfLastExchange()?.tokens).toMatchObject({ input: 7, output: 2, total: 9 });
    }
  });

  it('passes everything through when the client asked for usage, even split in three', async () => {
    expect(await replay([5, 140], true)).toBe(stream.toString());
    expect(await replay([events[0]!.length - 1, events[0]!.length + 1], true)).toBe(stream.toString());
  });

  it('answers without a body mutation when a chunk holds whole events and nothing changes', async () => {
    const exchange = await routedExchange(chatBody({ stream: true, stream_options: { include_usage: true } }));
    await exchange.exchange({ responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'text/event-stream' }) } });
    const reply = await exchange.exchange({ responseBody: { body: Buffer.from(events[0]!), endOfStream: false } });
    expect(reply.responseBody?.response).toBeUndefined();
    exchange.cancel();
  });
});

describe('BUFFERED_PARTIAL and STREAMED request bodies', () => {
  it('holds back partial request chunks and releases the rewritten body with the last', async () => {
    const stream = envoy.open();
    await stream.exchange({ requestHeaders: { headers: chatHeaders() } });
    const body = chatBody();
    const first = await stream.exchange({ requestBody: { body: body.subarray(0, 20), endOfStream: false } });
    expect(first.response).toBe('requestBody');
    expect(first.requestBody?.response?.bodyMutation?.clearBody).toBe(true);
    const last = await stream.exchange({ requestBody: { body: body.subarray(20), endOfStream: true } });
    expect(JSON.parse(last.requestBody?.response?.bodyMutation?.body?.toString() ?? '{}').model).toBe('gpt-4o-2024-08-06');
    stream.cancel();
  });
});

describe('trailers', () => {
  it('answers request and response trailers with trailer replies and ends after the response trailers', async () => {
    const stream = envoy.open();
    await stream.exchange({ requestHeaders: { headers: chatHeaders() } });
    await stream.exchange({ requestBody: { body: chatBody(), endOfStream: false } });
    const requestTrailers = await stream.exchange({ requestTrailers: { trailers: headerMap({ 'x-checksum': 'abc' }) } });
    expect(requestTrailers.response).toBe('requestTrailers');
    await stream.exchange({ responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) } });
    const body = await stream.exchange({ responseBody: { body: Buffer.from('{"choices":[]}'), endOfStream: false } });
    expect(body.response).toBe('responseBody');
    const responseTrailers = await stream.exchange({ responseTrailers: { trailers: headerMap({ 'grpc-status': '0' }) } });
    expect(responseTrailers.response).toBe('responseTrailers');
    expect((await stream.ended).code).toBe(grpc.status.OK);
  });
});

describe('BUFFERED responses', () => {
  it('meters usage from a gzip body the upstream compressed anyway', async () => {
    const stream = await routedExchange();
    await stream.exchange({
      responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'application/json', 'content-encoding': 'gzip' }) },
    });
    const json = JSON.stringify({ model: 'gpt-4o-2024-08-06', choices: [{}], usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 } });
    const reply = await stream.exchange({ responseBody: { body: gzipSync(json), endOfStream: true } });
    expect(reply.responseBody?.response).toBeUndefined();
    await stream.ended;
    expect(recordOfLastExchange()?.tokens).toMatchObject({ input: 3, output: 4, total: 7 });
  });

  it('does not inflate a compressed body past the response limit', async () => {
    const stream = await routedExchange();
    await stream.exchange({
      responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'application/json', 'content-encoding': 'gzip' }) },
    });
    // Valid JSON with usage, 9 MiB once inflated (the limit here is 8 MiB), 9 KiB on the wire.
    const usage = '{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2},"pad":"';
    const bomb = gzipSync(Buffer.concat([Buffer.from(usage), Buffer.alloc(9 * 1024 * 1024, 0x20), Buffer.from('"}')]));
    expect(bomb.length).toBeLessThan(64 * 1024);
    const reply = await stream.exchange({ responseBody: { body: bomb, endOfStream: true } });
    expect(reply.response).toBe('responseBody');
    expect(reply.responseBody?.response).toBeUndefined();
    await stream.ended;
    expect(recordOfLastExchange()).toMatchObject({ status: 200, tokens: null });
  });

  it('rewrites a non-OpenAI upstream error into the OpenAI envelope with its content-length', async () => {
    const stream = await routedExchange();
    await stream.exchange({ responseHeaders: { headers: headerMap({ ':status': '502', 'content-type': 'text/html' }) } });
    const reply = await stream.exchange({ responseBody: { body: Buffer.from('<html>bad gateway</html>'), endOfStream: true } });
    const common = reply.responseBody?.response;
    const body = common?.bodyMutation?.body ?? Buffer.alloc(0);
    expect(JSON.parse(body.toString())).toMatchObject({ error: { code: 'upstream_502', type: 'server_error' } });
    expect(setHeaders(reply).get('content-length')).toBe(String(body.length));
    expect(setHeaders(reply).get('content-type')).toBe('application/json');
  });

  it('accepts a buffered body larger than gRPC’s 4 MiB default', async () => {
    const stream = await routedExchange();
    await stream.exchange({ responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) } });
    const content = 'x'.repeat(6 * 1024 * 1024);
    const big = Buffer.from(JSON.stringify({ choices: [{ message: { content } }], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } }));
    const reply = await stream.exchange({ responseBody: { body: big, endOfStream: true } });
    expect(reply.response).toBe('responseBody');
    expect((await stream.ended).code).toBe(grpc.status.OK);
    expect(recordOfLastExchange()?.tokens?.total).toBe(3);
  });
});

describe('ending the stream', () => {
  it('ends the call from the server after an immediate response and writes one record', async () => {
    const stream = envoy.open();
    const reply = await stream.exchange({ requestHeaders: { headers: chatHeaders({ authorization: 'Bearer nope' }) } });
    expect(reply.immediateResponse?.status?.code).toBe('Unauthorized');
    expect(reply.immediateResponse?.headers?.setHeaders?.[0]?.header?.key).toBe('content-type');
    expect((await stream.ended).code).toBe(grpc.status.OK);
    expect(accessLog.records.filter((record) => record.request_id === lastRequestId)).toHaveLength(1);
    expect(recordOfLastExchange()).toMatchObject({ status: 401, outcome: 'rejected', error_code: 'invalid_key' });
  });

  it('writes one record when Envoy goes away mid-exchange', async () => {
    const stream = await routedExchange();
    stream.cancel();
    await stream.ended;
    await expect.poll(recordOfLastExchange).toBeDefined();
    expect(recordOfLastExchange()?.outcome).toMatch(/cancelled|incomplete/);
    expect(recordOfLastExchange()?.model_asked).toBe('gpt-4o');
  });

  it('sends nothing back in observability mode', async () => {
    const stream = envoy.open();
    stream.send({ requestHeaders: { headers: chatHeaders() }, observabilityMode: true });
    stream.send({ requestBody: { body: chatBody(), endOfStream: true }, observabilityMode: true });
    await expect(stream.next(300)).rejects.toThrow('no reply');
    stream.cancel();
  });

  it('rejects a message without a request with INVALID_ARGUMENT', async () => {
    const stream = envoy.open();
    stream.send({});
    expect((await stream.ended).code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  it('fails closed when request headers were never sent', async () => {
    const stream = envoy.open();
    const reply = await stream.exchange({ requestBody: { body: chatBody(), endOfStream: true } });
    expect(reply.immediateResponse?.status?.code).toBe('InternalServerError');
  });
});
