import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  chatCompletionBody,
  chatCompletionEvents,
  completeChat,
  embeddingsBody,
  errorBody,
  mockModels,
  parseChatRequest,
  parseEmbeddingsRequest,
  parseFaultControls,
  type FaultControls,
} from './behaviour.ts';

export interface MockLlmOptions {
  host?: string;
  port?: number;
  /** Characters of content per SSE chunk. */
  defaultChunkSize?: number;
  defaultChunkDelayMs?: number;
  requestLogLimit?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  receivedAt: number;
}

export interface MockLlm {
  readonly url: string;
  readonly port: number;
  requests(): RecordedRequest[];
  clearRequests(): void;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 8 * 1024 * 1024;

class BodyTooLarge extends Error {}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new BodyTooLarge();
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function sendJson(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  response.end(text);
}

function flatHeaders(request: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return headers;
}

/**
 * An OpenAI-compatible, deterministic provider for the offline default and the tests, with faults on demand
 * through `x-mock-*` request headers (which the gateway passes through).
 */
export async function startMockLlm(options: MockLlmOptions = {}): Promise<MockLlm> {
  const host = options.host ?? '127.0.0.1';
  const logLimit = options.requestLogLimit ?? 200;
  const recorded: RecordedRequest[] = [];
  let counter = 0;

  async function answerFault(response: ServerResponse, controls: FaultControls): Promise<boolean> {
    if (controls.status === undefined || controls.status < 300) return false;
    const status = controls.status;
    if (controls.errorAsText) {
      response.writeHead(status, { 'content-type': 'text/plain' });
      response.end('upstream exploded');
    } else {
      sendJson(response, status, errorBody(status, `Mock error ${status} on demand.`), status === 429 ? { 'retry-after': '1' } : {});
    }
    return true;
  }

  async function chatCompletions(response: ServerResponse, body: unknown, controls: FaultControls): Promise<void> {
    const parsed = parseChatRequest(body);
    if (!parsed.ok) return sendJson(response, 400, errorBody(400, parsed.message));
    counter += 1;
    const request = parsed.value;
    const completion = completeChat(request, counter, controls.content);
    const id = `chatcmpl-mock-${counter}`;
    const created = Math.floor(Date.now() / 1000);
    if (!request.stream) return sendJson(response, 200, chatCompletionBody(id, request.model, created, completion));

    const chunkSize = controls.chunkSize ?? options.defaultChunkSize ?? 8;
    const chunkDelay = controls.chunkDelayMs ?? options.defaultChunkDelayMs ?? 0;
    const events = chatCompletionEvents(id, request.model, created, completion, chunkSize, request.includeUsage);
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const [index, event] of events.entries()) {
      // Event 0 carries the role; content chunks follow it.
      if (controls.disconnectAfterChunks !== undefined && index > controls.disconnectAfterChunks) {
        // Let what was written reach the client first: the fault is a cut mid-stream, not before headers.
        await sleep(20);
        response.socket?.destroy();
        return;
      }
      await new Promise<void>((resolve) => response.write(event, () => resolve()));
      if (chunkDelay > 0) await sleep(chunkDelay);
    }
    response.end();
  }

  const server = createServer((request, response) => {
    void (async () => {
      const path = (request.url ?? '/').split('?')[0] ?? '/';
      if (path === '/__mock/requests') {
        if (request.method === 'DELETE') recorded.length = 0;
        return sendJson(response, 200, recorded);
      }
      let text: string;
      try {
        text = await readBody(request);
      } catch (error) {
        if (error instanceof BodyTooLarge) return sendJson(response, 413, errorBody(413, 'Request body too large.'));
        throw error;
      }
      const headers = flatHeaders(request);
      if (path.startsWith('/v1/')) {
        recorded.push({ method: request.method ?? '', path, headers, body: text, receivedAt: Date.now() });
        if (recorded.length > logLimit) recorded.splice(0, recorded.length - logLimit);
      }
      const controls = parseFaultControls(headers);
      if (!controls.ok) return sendJson(response, 400, errorBody(400, controls.message));
      if (controls.value.firstByteDelayMs > 0) await sleep(controls.value.firstByteDelayMs);
      if (await answerFault(response, controls.value)) return;

      if (request.method === 'GET' && path === '/v1/models') {
        return sendJson(response, 200, {
          object: 'list',
          data: mockModels.map((id) => ({ id, object: 'model', created: 0, owned_by: 'portcullis-mock' })),
        });
      }
      const known = path === '/v1/chat/completions' || path === '/v1/embeddings';
      if (request.method !== 'POST' || !known) {
        return sendJson(response, 404, errorBody(404, `Invalid URL (${request.method} ${path})`));
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        return sendJson(response, 400, errorBody(400, 'We could not parse the JSON body of your request.'));
      }
      if (path === '/v1/chat/completions') return chatCompletions(response, body, controls.value);
      const embeddings = parseEmbeddingsRequest(body);
      if (!embeddings.ok) return sendJson(response, 400, errorBody(400, embeddings.message));
      return sendJson(response, 200, embeddingsBody(embeddings.value));
    })().catch(() => {
      if (!response.headersSent) sendJson(response, 500, errorBody(500, 'The mock failed unexpectedly.'));
      else response.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://${host}:${port}`,
    port,
    requests: () => [...recorded],
    clearRequests: () => {
      recorded.length = 0;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function flag(args: string[], name: string): number | string | undefined {
  const index = args.indexOf(name);
  return index === -1 ? undefined : args[index + 1];
}

export async function runMockLlmCli(args: string[]): Promise<void> {
  const known = new Set(['--host', '--port', '--chunk-size', '--chunk-delay-ms']);
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i] ?? '';
    if (!known.has(name)) throw new Error(`mock-llm: unknown flag ${name} (known: ${[...known].join(', ')})`);
    if (args[i + 1] === undefined) throw new Error(`mock-llm: ${name} needs a value`);
  }
  const numberFlag = (name: string) => {
    const value = flag(args, name);
    if (value === undefined) return undefined;
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 0) throw new Error(`mock-llm: ${name} must be a non-negative integer`);
    return parsed;
  };
  const mock = await startMockLlm({
    host: (flag(args, '--host') as string | undefined) ?? '127.0.0.1',
    port: numberFlag('--port') ?? 8081,
    defaultChunkSize: numberFlag('--chunk-size'),
    defaultChunkDelayMs: numberFlag('--chunk-delay-ms'),
  });
  process.stdout.write(`${JSON.stringify({ msg: 'mock-llm listening', url: mock.url })}\n`);
  const stop = () => void mock.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
