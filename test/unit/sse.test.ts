import { describe, expect, it } from 'vitest';
import { parseEvent, SseEventSplitter, type SseEvent } from '../../src/api/sse.ts';

interface RunResult {
  events: SseEvent[];
  data: Array<string | undefined>;
  tail: Buffer;
  /** Every event's raw bytes followed by the flushed tail. */
  bytes: Buffer;
}

function run(chunks: readonly Buffer[]): RunResult {
  const splitter = new SseEventSplitter();
  const events: SseEvent[] = [];
  for (const chunk of chunks) events.push(...splitter.push(chunk));
  const tail = splitter.flush();
  return {
    events,
    data: events.map((event) => event.data),
    tail,
    bytes: Buffer.concat([...events.map((event) => event.raw), tail]),
  };
}

function everyTwoChunkSplit(input: Buffer): Array<[number, Buffer[]]> {
  const splits: Array<[number, Buffer[]]> = [];
  for (let at = 0; at <= input.length; at += 1) splits.push([at, [input.subarray(0, at), input.subarray(at)]]);
  return splits;
}

function byteByByte(input: Buffer): Buffer[] {
  return Array.from(input, (byte) => Buffer.from([byte]));
}

function chunkEvent(id: number, delta: Record<string, unknown>, finish: string | null): string {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-abc',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model: 'gpt-4o-mini',
    choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    seq: id,
  })}\n\n`;
}

// A realistic OpenAI chat completion stream, including non-ASCII content.
const openAiStream = Buffer.from(
  [
    chunkEvent(0, { role: 'assistant', content: '' }, null),
    chunkEvent(1, { content: 'Hel' }, null),
    chunkEvent(2, { content: 'lo, wörld ' }, null),
    chunkEvent(3, { content: '😀!' }, null),
    chunkEvent(4, {}, 'stop'),
    `data: ${JSON.stringify({ id: 'chatcmpl-abc', choices: [], usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 } })}\n\n`,
    'data: [DONE]\n\n',
  ].join(''),
  'utf8',
);

describe('SseEventSplitter on a realistic OpenAI stream', () => {
  const whole = run([openAiStream]);

  it('splits the unchunked stream into its seven events with nothing held back', () => {
    expect(whole.events).toHaveLength(7);
    expect(whole.tail.length).toBe(0);
    expect(whole.data.at(-1)).toBe('[DONE]');
    const parsed = whole.data.slice(0, -1).map((data) => JSON.parse(data ?? 'null') as { seq?: number; usage?: unknown });
    expect(parsed.slice(0, 5).map((event) => event.seq)).toEqual([0, 1, 2, 3, 4]);
    expect(parsed[5]?.usage).toEqual({ prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
    expect(whole.bytes.equals(openAiStream)).toBe(true);
    // Each event's raw bytes end with the blank line that terminated it.
    for (const event of whole.events) expect(event.raw.subarray(-2).toString()).toBe('\n\n');
  });

  it('gives identical bytes and data at every two-chunk split point', () => {
    for (const [at, chunks] of everyTwoChunkSplit(openAiStream)) {
      const result = run(chunks);
      expect(result.bytes.equals(openAiStream), `bytes differ when split at ${at}`).toBe(true);
      expect(result.data, `data differ when split at ${at}`).toEqual(whole.data);
      expect(result.tail.length, `tail not empty when split at ${at}`).toBe(0);
    }
  });

  it('gives identical bytes and data when fed byte by byte', () => {
    const result = run(byteByByte(openAiStream));
    expect(result.bytes.equals(openAiStream)).toBe(true);
    expect(result.data).toEqual(whole.data);
  });

  it('returns each event as soon as its blank line arrives, holding only the incomplete remainder', () => {
    const splitter = new SseEventSplitter();
    const first = chunkEvent(0, { content: 'a' }, null);
    const second = 'data: {"partial":';
    const events = splitter.push(Buffer.from(first + second));
    expect(events.map((event) => event.raw.toString())).toEqual([first]);
    expect(splitter.heldBytes).toBe(Buffer.byteLength(second));
    expect(splitter.push(Buffer.from('true}\n'))).toEqual([]);
    const done = splitter.push(Buffer.from('\n'));
    expect(done.map((event) => event.data)).toEqual(['{"partial":true}']);
    expect(splitter.heldBytes).toBe(0);
  });
});

describe('SseEventSplitter line endings and field forms', () => {
  it('accepts CRLF line endings, also when a chunk ends between the \\r and the \\n', () => {
    const input = Buffer.from('data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\n');
    const expected = ['{"a":1}', '{"b":2}'];
    expect(run([input]).data).toEqual(expected);
    // Split after every \r (between it and its \n).
    for (let at = 0; at < input.length; at += 1) {
      if (input[at] !== 0x0d) continue;
      const result = run([input.subarray(0, at + 1), input.subarray(at + 1)]);
      expect(result.data, `split after \\r at ${at}`).toEqual(expected);
      expect(result.bytes.equals(input)).toBe(true);
    }
    // And with every line ending cut at the same time.
    const pieces: Buffer[] = [];
    let start = 0;
    for (let at = 0; at < input.length; at += 1) {
      if (input[at] === 0x0d) {
        pieces.push(input.subarray(start, at + 1));
        start = at + 1;
      }
    }
    pieces.push(input.subarray(start));
    const cut = run(pieces);
    expect(cut.data).toEqual(expected);
    expect(cut.bytes.equals(input)).toBe(true);
  });

  it('does not end an event on a line holding only a \\r that is not followed by \\n yet', () => {
    const splitter = new SseEventSplitter();
    expect(splitter.push(Buffer.from('data: x\r\n\r'))).toEqual([]);
    const events = splitter.push(Buffer.from('\n'));
    expect(events.map((event) => event.data)).toEqual(['x']);
    expect(events[0]?.raw.toString()).toBe('data: x\r\n\r\n');
  });

  it('joins several data lines of one event with \\n', () => {
    const result = run([Buffer.from('data: first line\ndata: second line\n\n')]);
    expect(result.data).toEqual(['first line\nsecond line']);
    const crlf = run([Buffer.from('data: one\r\ndata: two\r\n\r\n')]);
    expect(crlf.data).toEqual(['one\ntwo']);
  });

  it('gives comment-only events undefined data but still returns their bytes', () => {
    const input = Buffer.from(': keepalive\n\ndata: x\n\n');
    const result = run([input]);
    expect(result.data).toEqual([undefined, 'x']);
    expect(result.events[0]?.raw.toString()).toBe(': keepalive\n\n');
    expect(result.bytes.equals(input)).toBe(true);
  });

  it('reads data: without a space, strips exactly one leading space, and treats a bare "data" as empty', () => {
    expect(run([Buffer.from('data:{"x":1}\n\n')]).data).toEqual(['{"x":1}']);
    expect(run([Buffer.from('data:  two spaces\n\n')]).data).toEqual([' two spaces']);
    expect(run([Buffer.from('data\n\n')]).data).toEqual(['']);
    expect(run([Buffer.from('data:\n\n')]).data).toEqual(['']);
  });

  it('ignores other fields (event, id, retry) and field names that merely start with "data"', () => {
    expect(run([Buffer.from('event: message\nid: 7\nretry: 1000\ndata: payload\n\n')]).data).toEqual(['payload']);
    expect(run([Buffer.from('retry: 1000\n\n')]).data).toEqual([undefined]);
    expect(run([Buffer.from('database: nope\n\n')]).data).toEqual([undefined]);
  });
});

describe('SseEventSplitter at the end of a stream', () => {
  it('returns an unterminated (truncated) final event from flush, unchanged', () => {
    const input = Buffer.from('data: {"a":1}\n\ndata: {"b":');
    const splitter = new SseEventSplitter();
    const events = splitter.push(input);
    expect(events.map((event) => event.data)).toEqual(['{"a":1}']);
    expect(splitter.heldBytes).toBe(Buffer.byteLength('data: {"b":'));
    expect(splitter.flush().toString()).toBe('data: {"b":');
    expect(splitter.heldBytes).toBe(0);
    expect(splitter.flush().length).toBe(0);
  });

  it('holds an event whose last line ended but whose blank line never came', () => {
    const input = Buffer.from('data: [DONE]\n');
    for (const [at, chunks] of everyTwoChunkSplit(input)) {
      const result = run(chunks);
      expect(result.events, `split at ${at}`).toEqual([]);
      expect(result.tail.equals(input), `split at ${at}`).toBe(true);
    }
  });

  it('starts afresh after flush', () => {
    const splitter = new SseEventSplitter();
    splitter.push(Buffer.from('data: stale'));
    splitter.flush();
    expect(splitter.push(Buffer.from('data: fresh\n\n')).map((event) => event.data)).toEqual(['fresh']);
    expect(splitter.heldBytes).toBe(0);
  });

  it('accepts empty chunks without effect', () => {
    const splitter = new SseEventSplitter();
    expect(splitter.push(Buffer.alloc(0))).toEqual([]);
    splitter.push(Buffer.from('data: a\n'));
    expect(splitter.push(Buffer.alloc(0))).toEqual([]);
    expect(splitter.push(Buffer.from('\n')).map((event) => event.data)).toEqual(['a']);
  });
});

describe('SseEventSplitter with multi-byte UTF-8', () => {
  const text = 'héllo 😀 — 日本';
  const input = Buffer.from(`data: ${JSON.stringify({ content: text })}\n\n`, 'utf8');

  it('parses correctly when a chunk boundary falls inside any code point', () => {
    // Boundaries inside a multi-byte sequence are those before a continuation byte (10xxxxxx).
    const insideCodePoint = everyTwoChunkSplit(input).filter(([at]) => {
      const byte = input[at];
      return byte !== undefined && (byte & 0xc0) === 0x80;
    });
    expect(insideCodePoint.length).toBeGreaterThan(5);
    for (const [at, chunks] of insideCodePoint) {
      const result = run(chunks);
      expect(result.bytes.equals(input), `bytes split at ${at}`).toBe(true);
      expect(JSON.parse(result.data[0] ?? 'null'), `data split at ${at}`).toEqual({ content: text });
    }
  });

  it('parses correctly when fed byte by byte', () => {
    const result = run(byteByByte(input));
    expect(result.data).toHaveLength(1);
    expect(JSON.parse(result.data[0] ?? 'null')).toEqual({ content: text });
  });
});

describe('parseEvent', () => {
  it('keeps the raw buffer it was given', () => {
    const raw = Buffer.from('data: x\n\n');
    const event = parseEvent(raw);
    expect(event.raw).toBe(raw);
    expect(event.data).toBe('x');
  });

  it('returns undefined data for an event without data lines', () => {
    expect(parseEvent(Buffer.from(': ping\n\n')).data).toBeUndefined();
    expect(parseEvent(Buffer.from('\n')).data).toBeUndefined();
  });

  it('strips the \\r of CRLF lines and joins data lines', () => {
    expect(parseEvent(Buffer.from('data: a\r\ndata: b\r\n\r\n')).data).toBe('a\nb');
  });
});
