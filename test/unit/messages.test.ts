import { describe, expect, it } from 'vitest';
import { errors } from '../../src/api/errors.ts';
import {
  ANSWERED_BY_GATEWAY,
  CONTINUE,
  immediateResponse,
  METADATA_NAMESPACE,
  metadataStruct,
  readHeaders,
  reject,
  reply,
  type Decision,
  type Phase,
  type ProcessingResponse,
} from '../../src/extproc/messages.ts';
import type { HeaderMutation } from '../../src/generated/envoy/service/ext_proc/v3/HeaderMutation.ts';

const phases: Phase[] = ['requestHeaders', 'requestBody', 'requestTrailers', 'responseHeaders', 'responseBody', 'responseTrailers'];
const commonPhases: Array<Exclude<Phase, 'requestTrailers' | 'responseTrailers'>> = [
  'requestHeaders',
  'requestBody',
  'responseHeaders',
  'responseBody',
];
const buffered = { setContentLength: true };
const streamed = { setContentLength: false };

/** The header mutation of a reply, wherever the phase puts it. */
function mutationOf(response: ProcessingResponse, phase: Phase): HeaderMutation | null | undefined {
  if (phase === 'requestTrailers' || phase === 'responseTrailers') return response[phase]?.headerMutation;
  return response[phase]?.response?.headerMutation;
}

function setHeaderMap(mutation: HeaderMutation | null | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  for (const option of mutation?.setHeaders ?? []) {
    const raw = option.header?.rawValue;
    result[option.header?.key ?? ''] = raw === undefined ? '<none>' : Buffer.from(raw).toString('latin1');
  }
  return result;
}

describe('readHeaders', () => {
  it('reads rawValue bytes, falls back to value, and lower-cases names', () => {
    const headers = readHeaders({
      headers: [
        { key: 'Authorization', rawValue: Buffer.from('Bearer pc-x'), value: '' },
        { key: ':PATH', rawValue: Buffer.alloc(0), value: '/v1/chat/completions' },
        { key: 'Content-Type', value: 'application/json' },
        { key: 'X-Both', rawValue: Buffer.from('from-raw'), value: 'from-value' },
        { key: 'x-empty' },
      ],
    });
    expect(Object.fromEntries(headers)).toEqual({
      authorization: 'Bearer pc-x',
      ':path': '/v1/chat/completions',
      'content-type': 'application/json',
      'x-both': 'from-raw',
      'x-empty': '',
    });
  });

  it('decodes raw bytes one byte per character (latin1)', () => {
    const headers = readHeaders({ headers: [{ key: 'x-bytes', rawValue: Buffer.from([0x63, 0x61, 0x66, 0xe9]) }] });
    expect(headers.get('x-bytes')).toBe('café');
  });

  it('skips entries without a key and tolerates a missing map', () => {
    expect(readHeaders({ headers: [{ key: '', rawValue: Buffer.from('x') }] }).size).toBe(0);
    expect(readHeaders(undefined).size).toBe(0);
    expect(readHeaders(null).size).toBe(0);
    expect(readHeaders({ headers: [] }).size).toBe(0);
  });
});

describe('reply: one response per phase', () => {
  it('produces exactly the matching oneof key and nothing else for a plain continue', () => {
    for (const phase of phases) {
      for (const options of [buffered, streamed]) {
        const response = reply(phase, CONTINUE, options);
        expect(Object.keys(response), phase).toEqual([phase]);
        expect(response[phase], phase).toEqual({});
      }
    }
  });

  it('keeps to the matching oneof key when there is something to change', () => {
    const decision: Decision = { action: 'continue', headers: { set: { 'x-a': '1' } }, body: Buffer.from('x') };
    for (const phase of phases) {
      const response = reply(phase, decision, buffered);
      expect(Object.keys(response), phase).toEqual([phase]);
    }
  });
});

describe('reply: header mutations', () => {
  const decision: Decision = { action: 'continue', headers: { set: { 'x-portcullis-upstream': 'mock', authorization: 'Bearer sk-up' }, remove: ['x-api-key'] } };

  it('uses rawValue only (no value field) and a BoolValue append of false, in every phase', () => {
    for (const phase of phases) {
      const mutation = mutationOf(reply(phase, decision, streamed), phase);
      expect(mutation?.setHeaders, phase).toEqual([
        { header: { key: 'x-portcullis-upstream', rawValue: Buffer.from('mock') }, append: { value: false } },
        { header: { key: 'authorization', rawValue: Buffer.from('Bearer sk-up') }, append: { value: false } },
      ]);
      for (const option of mutation?.setHeaders ?? []) {
        expect(option.header && 'value' in option.header, phase).toBe(false);
        expect(option.header?.rawValue, phase).toBeInstanceOf(Buffer);
        expect(Object.keys(option).sort(), phase).toEqual(['append', 'header']);
      }
      expect(mutation?.removeHeaders, phase).toEqual(['x-api-key']);
    }
  });

  it('marks a header-changing common response as CONTINUE', () => {
    expect(reply('requestHeaders', decision, streamed).requestHeaders?.response?.status).toBe('CONTINUE');
  });

  it('emits no header mutation for empty edits', () => {
    const response = reply('requestHeaders', { action: 'continue', headers: { set: {}, remove: [] } }, streamed);
    expect(response).toEqual({ requestHeaders: {} });
  });

  it('emits a remove-only mutation', () => {
    const response = reply('responseHeaders', { action: 'continue', headers: { remove: ['server'] } }, streamed);
    expect(response.responseHeaders?.response?.headerMutation).toEqual({ setHeaders: [], removeHeaders: ['server'] });
  });
});

describe('reply: body replacement and content-length', () => {
  const text = '{"model":"mock","content":"héllo 😀"}';
  const body = Buffer.from(text, 'utf8');

  it('adds the byte length (not the character length) as content-length when buffered', () => {
    expect(body.length).not.toBe(text.length);
    for (const phase of ['requestBody', 'responseBody'] as const) {
      const common = reply(phase, { action: 'continue', body }, buffered)[phase]?.response;
      expect(common?.bodyMutation).toEqual({ body });
      expect(common?.headerMutation?.setHeaders).toEqual([
        { header: { key: 'content-length', rawValue: Buffer.from(String(Buffer.byteLength(text))) }, append: { value: false } },
      ]);
      expect(setHeaderMap(common?.headerMutation)['content-length']).toBe(String(body.length));
    }
  });

  it('keeps other header edits next to the content-length', () => {
    const common = reply('requestBody', { action: 'continue', body, headers: { set: { 'x-a': 'b' }, remove: ['x-c'] } }, buffered).requestBody?.response;
    expect(setHeaderMap(common?.headerMutation)).toEqual({ 'x-a': 'b', 'content-length': String(body.length) });
    expect(common?.headerMutation?.removeHeaders).toEqual(['x-c']);
  });

  it('does not add content-length when not asked (streamed chunks)', () => {
    const common = reply('responseBody', { action: 'continue', body }, streamed).responseBody?.response;
    expect(common).toEqual({ status: 'CONTINUE', bodyMutation: { body } });
  });

  it('sets content-length 0 for an empty replacement body', () => {
    const common = reply('requestBody', { action: 'continue', body: Buffer.alloc(0) }, buffered).requestBody?.response;
    expect(setHeaderMap(common?.headerMutation)).toEqual({ 'content-length': '0' });
  });

  it('clears a chunk with clearBody and never adds content-length for it', () => {
    for (const options of [buffered, streamed]) {
      const common = reply('responseBody', { action: 'continue', body: 'clear' }, options).responseBody?.response;
      expect(common).toEqual({ status: 'CONTINUE', bodyMutation: { clearBody: true } });
    }
  });
});

describe('reply: clear_route_cache', () => {
  it('is emitted only when a header mutation is present', () => {
    const withHeaders = reply(
      'requestHeaders',
      { action: 'continue', headers: { set: { 'x-portcullis-upstream': 'mock' } }, clearRouteCache: true },
      streamed,
    );
    expect(withHeaders.requestHeaders?.response?.clearRouteCache).toBe(true);

    const alone = reply('requestHeaders', { action: 'continue', clearRouteCache: true }, streamed);
    expect(alone).toEqual({ requestHeaders: {} });

    const bodyOnly = reply('requestBody', { action: 'continue', body: Buffer.from('x'), clearRouteCache: true }, streamed);
    expect(bodyOnly.requestBody?.response).toEqual({ status: 'CONTINUE', bodyMutation: { body: Buffer.from('x') } });
    expect(bodyOnly.requestBody?.response && 'clearRouteCache' in bodyOnly.requestBody.response).toBe(false);
  });

  it('counts the implied content-length header as a header mutation', () => {
    const response = reply('requestBody', { action: 'continue', body: Buffer.from('x'), clearRouteCache: true }, buffered);
    expect(response.requestBody?.response?.clearRouteCache).toBe(true);
  });

  it('is absent when not requested', () => {
    const response = reply('requestHeaders', { action: 'continue', headers: { set: { 'x-a': 'b' } } }, streamed);
    expect(response.requestHeaders?.response && 'clearRouteCache' in response.requestHeaders.response).toBe(false);
  });
});

describe('reply: streaming mode override', () => {
  const decision: Decision = { action: 'continue', streamResponseBody: true };

  it('switches the response body to STREAMED with trailers skipped, on responseHeaders', () => {
    const response = reply('responseHeaders', decision, streamed);
    expect(response.modeOverride).toEqual({ responseBodyMode: 'STREAMED', responseTrailerMode: 'SKIP' });
    expect(Object.keys(response).sort()).toEqual(['modeOverride', 'responseHeaders']);
  });

  it('is ignored in every other phase', () => {
    for (const phase of phases.filter((candidate) => candidate !== 'responseHeaders')) {
      const response = reply(phase, decision, streamed);
      expect(response.modeOverride, phase).toBeUndefined();
      expect(Object.keys(response), phase).toEqual([phase]);
    }
  });
});

describe('reply: dynamic metadata', () => {
  it('puts string, number and bool values under the portcullis namespace, in any phase', () => {
    const metadata = { key_id: 'team-a', prompt_tokens: 12, ratio: 0.5, streamed: false, cached: true };
    const expected = {
      fields: {
        portcullis: {
          structValue: {
            fields: {
              key_id: { stringValue: 'team-a' },
              prompt_tokens: { numberValue: 12 },
              ratio: { numberValue: 0.5 },
              streamed: { boolValue: false },
              cached: { boolValue: true },
            },
          },
        },
      },
    };
    for (const phase of phases) {
      const response = reply(phase, { action: 'continue', metadata }, streamed);
      expect(response.dynamicMetadata, phase).toEqual(expected);
      expect(Object.keys(response).sort(), phase).toEqual(['dynamicMetadata', phase].sort());
    }
  });

  it('metadataStruct uses the exported namespace and keeps empty strings and zero', () => {
    expect(METADATA_NAMESPACE).toBe('portcullis');
    expect(metadataStruct({ a: '', b: 0 })).toEqual({
      fields: { portcullis: { structValue: { fields: { a: { stringValue: '' }, b: { numberValue: 0 } } } } },
    });
    expect(metadataStruct({})).toEqual({ fields: { portcullis: { structValue: { fields: {} } } } });
  });
});

describe('reply: respond decisions', () => {
  it('becomes an ImmediateResponse with status, JSON body, content-type, details and the answered marker', () => {
    const body = { error: { message: 'nope 😀', type: 'invalid_request_error', param: null, code: 'x' } };
    for (const phase of phases) {
      const response = reply(phase, { action: 'respond', status: 429, body, details: 'portcullis_rate_limited' }, buffered);
      expect(Object.keys(response).sort(), phase).toEqual(['dynamicMetadata', 'immediateResponse']);
      const immediate = response.immediateResponse;
      expect(immediate?.status).toEqual({ code: 429 });
      expect(immediate?.details).toBe('portcullis_rate_limited');
      expect(immediate?.body).toBeInstanceOf(Buffer);
      expect(JSON.parse(Buffer.from(immediate?.body ?? '').toString('utf8'))).toEqual(body);
      expect(immediate?.headers?.setHeaders).toEqual([
        { header: { key: 'content-type', rawValue: Buffer.from('application/json') }, append: { value: false } },
      ]);
      expect(response.dynamicMetadata).toEqual({
        fields: { portcullis: { structValue: { fields: { [ANSWERED_BY_GATEWAY]: { boolValue: true } } } } },
      });
      expect(ANSWERED_BY_GATEWAY).toBe('answered');
    }
  });

  it('reject() carries a GatewayError through unchanged', () => {
    const error = errors.modelNotFound('gpt-9');
    const decision = reject(error, 'portcullis_model_not_found');
    expect(decision).toEqual({ action: 'respond', status: 404, body: error.body, details: 'portcullis_model_not_found' });
    const immediate = reply('requestBody', decision, buffered).immediateResponse;
    expect(immediate?.status).toEqual({ code: 404 });
    expect(JSON.parse(Buffer.from(immediate?.body ?? '').toString())).toEqual(error.body);
  });

  it('immediateResponse alone has no dynamic metadata', () => {
    const response = immediateResponse(500, { a: 1 }, 'why');
    expect(Object.keys(response)).toEqual(['immediateResponse']);
    expect(Buffer.from(response.immediateResponse?.body ?? '').toString()).toBe('{"a":1}');
  });
});
