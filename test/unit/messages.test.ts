import { describe, expect, it } from 'vitest';
import { errors } from '../../src/api/errors.ts';
import { readHeaders, reject, reply, type Decision, type Phase } from '../../src/extproc/messages.ts';

const phases: Phase[] = ['requestHeaders', 'requestBody', 'requestTrailers', 'responseHeaders', 'responseBody', 'responseTrailers'];

describe('reading headers', () => {
  it('prefers raw_value, falls back to value, and lower-cases names', () => {
    const headers = readHeaders({
      headers: [
        { key: 'Authorization', rawValue: Buffer.from('Bearer x'), value: '' },
        { key: ':path', value: '/v1/models', rawValue: Buffer.alloc(0) },
      ],
    });
    expect(headers.get('authorization')).toBe('Bearer x');
    expect(headers.get(':path')).toBe('/v1/models');
  });
});

describe('replies', () => {
  it('answers each phase with exactly its own response type', () => {
    for (const phase of phases) {
      const response = reply(phase, { action: 'continue' }, { setContentLength: false });
      expect(Object.keys(response)).toEqual([phase]);
    }
  });

  it('writes header mutations as raw_value with a BoolValue append', () => {
    const response = reply('requestHeaders', { action: 'continue', headers: { set: { 'x-a': 'b' }, remove: ['x-c'] } }, { setContentLength: false });
    const mutation = response.requestHeaders?.response?.headerMutation;
    expect(mutation?.setHeaders).toEqual([{ header: { key: 'x-a', rawValue: Buffer.from('b') }, append: { value: false } }]);
    expect(mutation?.removeHeaders).toEqual(['x-c']);
  });

  it('sets the byte length of a buffered body replacement as content-length, only when asked', () => {
    const body = Buffer.from('{"content":"Grüße 😀"}');
    const decision: Decision = { action: 'continue', body };
    const buffered = reply('requestBody', decision, { setContentLength: true }).requestBody?.response;
    expect(buffered?.bodyMutation).toEqual({ body });
    expect(buffered?.headerMutation?.setHeaders?.[0]?.header).toEqual({ key: 'content-length', rawValue: Buffer.from(String(body.length)) });
    expect(body.length).toBeGreaterThan(body.toString().length);
    const streamed = reply('responseBody', decision, { setContentLength: false }).responseBody?.response;
    expect(streamed?.headerMutation).toBeUndefined();
  });

  it('sends clear_route_cache only together with a header mutation', () => {
    const withHeaders = reply('requestBody', { action: 'continue', headers: { set: { 'x-portcullis-upstream': 'a' } }, clearRouteCache: true }, { setContentLength: true });
    expect(withHeaders.requestBody?.response?.clearRouteCache).toBe(true);
    const alone = reply('requestBody', { action: 'continue', clearRouteCache: true }, { setContentLength: true });
    expect(alone.requestBody?.response).toBeUndefined();
  });

  it('withholds a chunk with clear_body', () => {
    expect(reply('requestBody', { action: 'continue', body: 'clear' }, { setContentLength: false }).requestBody?.response?.bodyMutation).toEqual({ clearBody: true });
  });

  it('overrides the response body mode to STREAMED only in a response-headers reply', () => {
    const decision: Decision = { action: 'continue', streamResponseBody: true };
    expect(reply('responseHeaders', decision, { setContentLength: false }).modeOverride).toEqual({ responseBodyMode: 'STREAMED', responseTrailerMode: 'SKIP' });
    expect(reply('requestHeaders', decision, { setContentLength: false }).modeOverride).toBeUndefined();
  });

  it('emits dynamic metadata under the portcullis namespace', () => {
    const response = reply('requestBody', { action: 'continue', metadata: { key_id: 'k', tokens: 3, stream: true } }, { setContentLength: true });
    expect(response.dynamicMetadata).toEqual({
      fields: { portcullis: { structValue: { fields: { key_id: { stringValue: 'k' }, tokens: { numberValue: 3 }, stream: { boolValue: true } } } } },
    });
  });

  it('turns a rejection into an ImmediateResponse with a JSON body and the gateway marker', () => {
    const response = reply('requestBody', reject(errors.modelNotFound('gpt-9'), 'portcullis_model_not_found'), { setContentLength: true });
    expect(Object.keys(response).sort()).toEqual(['dynamicMetadata', 'immediateResponse']);
    const immediate = response.immediateResponse;
    expect(immediate?.status).toEqual({ code: 404 });
    expect(immediate?.details).toBe('portcullis_model_not_found');
    expect(JSON.parse(String(immediate?.body))).toMatchObject({ error: { code: 'model_not_found', param: 'model' } });
    expect(immediate?.headers?.setHeaders?.[0]?.header?.key).toBe('content-type');
    expect(response.dynamicMetadata?.fields?.portcullis?.structValue?.fields?.answered).toEqual({ boolValue: true });
  });
});
