import { describe, expect, it } from 'vitest';
import { SseEventSplitter } from '../../src/api/sse.ts';

const stream = Buffer.from(
  [
    'data: {"choices":[{"delta":{"content":"Grüße 😀"}}]}\n\n',
    ': keep-alive comment\n\n',
    'event: message\ndata: {"a":1}\ndata: {"b":2}\n\n',
    'data:{"no":"space"}\r\n\r\n',
    'data: [DONE]\n\n',
  ].join(''),
);

function run(chunks: Buffer[]): { raw: string; data: Array<string | undefined>; tail: string } {
  const splitter = new SseEventSplitter();
  const raws: Buffer[] = [];
  const data: Array<string | undefined> = [];
  for (const chunk of chunks) {
    for (const event of splitter.push(chunk)) {
      raws.push(event.raw);
      data.push(event.data);
    }
  }
  const tail = splitter.flush();
  return { raw: Buffer.concat([...raws, tail]).toString('utf8'), data, tail: tail.toString('utf8') };
}

const whole = run([stream]);

describe('SseEventSplitter', () => {
  it('parses data lines, joins multi-line data, keeps comments as data-less events, accepts CRLF', () => {
    expect(whole.data).toEqual([
      '{"choices":[{"delta":{"content":"Grüße 😀"}}]}',
      undefined,
      '{"a":1}\n{"b":2}',
      '{"no":"space"}',
      '[DONE]',
    ]);
    expect(whole.tail).toBe('');
  });

  it('gives the same events and the same bytes at every two-chunk split point', () => {
    for (let split = 1; split < stream.length; split += 1) {
      const result = run([stream.subarray(0, split), stream.subarray(split)]);
      expect(result.data, `split at ${split}`).toEqual(whole.data);
      expect(result.raw, `split at ${split}`).toBe(stream.toString('utf8'));
    }
  });

  it('survives byte-by-byte delivery, including inside multi-byte characters and CRLF pairs', () => {
    const bytes = Array.from(stream, (byte) => Buffer.from([byte]));
    const result = run(bytes);
    expect(result.data).toEqual(whole.data);
    expect(result.raw).toBe(stream.toString('utf8'));
  });

  it('holds back an unterminated event until flushed (a truncated upstream)', () => {
    const splitter = new SseEventSplitter();
    expect(splitter.push(Buffer.from('data: {"partial":'))).toEqual([]);
    expect(splitter.heldBytes).toBe(17);
    expect(splitter.flush().toString()).toBe('data: {"partial":');
    expect(splitter.heldBytes).toBe(0);
  });
});
