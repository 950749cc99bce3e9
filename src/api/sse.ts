/*
 * Server-sent events arrive from Envoy in chunks whose boundaries are arbitrary: an event, a line, even a CRLF
 * can be split across two chunks. The splitter returns only complete events (each with its raw bytes, so a
 * pass-through never re-serialises) and holds the incomplete tail until the next chunk or the end of stream.
 */

const LF = 0x0a;
const CR = 0x0d;
const EMPTY = Buffer.alloc(0);

export interface SseEvent {
  /** The event's bytes exactly as received, including the blank line that ended it. */
  raw: Buffer;
  /** The event's data lines joined with "\n", or undefined for an event without data (comments, retry). */
  data: string | undefined;
}

export class SseEventSplitter {
  private pending: Buffer = EMPTY;
  // Where scanning resumes in `pending` (everything before it holds no unprocessed line end) and where the
  // current line and event begin, so each byte is scanned once however the input is chunked.
  private scanFrom = 0;
  private lineStart = 0;

  push(chunk: Buffer): SseEvent[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const events: SseEvent[] = [];
    let eventStart = 0;
    let lineEnd = this.pending.indexOf(LF, this.scanFrom);
    while (lineEnd !== -1) {
      const lineLength = lineEnd - this.lineStart;
      const isBlank = lineLength === 0 || (lineLength === 1 && this.pending[this.lineStart] === CR);
      if (isBlank) {
        events.push(parseEvent(this.pending.subarray(eventStart, lineEnd + 1)));
        eventStart = lineEnd + 1;
      }
      this.lineStart = lineEnd + 1;
      lineEnd = this.pending.indexOf(LF, this.lineStart);
    }
    if (eventStart > 0) {
      this.pending = this.pending.subarray(eventStart);
      this.lineStart -= eventStart;
    }
    this.scanFrom = this.pending.length;
    return events;
  }

  /** Bytes held back because no blank line has ended them yet. */
  get heldBytes(): number {
    return this.pending.length;
  }

  /** Ends the stream: returns the unterminated tail (a truncated upstream), which is passed on as it is. */
  flush(): Buffer {
    const tail = this.pending;
    this.pending = EMPTY;
    this.scanFrom = 0;
    this.lineStart = 0;
    return tail;
  }
}

export function parseEvent(raw: Buffer): SseEvent {
  let data: string | undefined;
  for (const rawLine of raw.toString('utf8').split('\n')) {
    const line = rawLine.endsWith('\r') ? rawLine.slice(0, -1) : rawLine;
    if (line === 'data' || line.startsWith('data:')) {
      const value = line.length > 5 && line[5] === ' ' ? line.slice(6) : line.slice(5);
      data = data === undefined ? value : `${data}\n${value}`;
    }
  }
  return { raw, data };
}
