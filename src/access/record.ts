import { createWriteStream, type WriteStream } from 'node:fs';
import type { TokenUsage } from '../api/openai.ts';

/**
 * One structured record per HTTP exchange. It names who asked for what and what happened, never the prompt or
 * the key itself; the audit pipeline later signs and ships the same facts.
 */
export interface AccessRecord {
  time: string;
  request_id: string;
  key_id: string | null;
  method: string;
  path: string;
  operation: string | null;
  model_asked: string | null;
  model_served: string | null;
  upstream: string | null;
  region: string | null;
  stream: boolean;
  status: number;
  outcome: 'ok' | 'rejected' | 'upstream_error' | 'incomplete' | 'cancelled' | 'gateway_error';
  error_code: string | null;
  tokens: { input: number; cached_input: number; output: number; reasoning: number; total: number } | null;
  latency_ms: number;
  /** Time from the request reaching the gateway to the upstream's response headers. */
  upstream_latency_ms: number | null;
  /** Time to the first streamed chunk, for SSE responses. */
  ttft_ms: number | null;
}

export function tokensOf(usage: TokenUsage | undefined): AccessRecord['tokens'] {
  if (!usage) return null;
  return {
    input: usage.inputTokens,
    cached_input: usage.cachedInputTokens,
    output: usage.outputTokens,
    reasoning: usage.reasoningTokens,
    total: usage.totalTokens,
  };
}

export interface AccessLog {
  write(record: AccessRecord): void;
  close(): Promise<void>;
}

export class MemoryAccessLog implements AccessLog {
  readonly records: AccessRecord[] = [];
  write(record: AccessRecord): void {
    this.records.push(record);
  }
  async close(): Promise<void> {}
}

/** JSON lines to a file, or to stdout with "-". */
export class JsonLinesAccessLog implements AccessLog {
  private readonly stream: NodeJS.WritableStream;
  private readonly owned: WriteStream | undefined;

  constructor(target: string) {
    if (target === '-') {
      this.stream = process.stdout;
      this.owned = undefined;
    } else {
      this.owned = createWriteStream(target, { flags: 'a' });
      this.stream = this.owned;
    }
  }

  write(record: AccessRecord): void {
    this.stream.write(`${JSON.stringify(record)}\n`);
  }

  close(): Promise<void> {
    const owned = this.owned;
    if (!owned) return Promise.resolve();
    return new Promise((resolve) => owned.end(resolve));
  }
}
