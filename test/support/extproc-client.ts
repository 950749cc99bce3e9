import * as grpc from '@grpc/grpc-js';
import { loadExtProcService } from '../../src/extproc/server.ts';
import type { ProcessingRequest } from '../../src/generated/envoy/service/ext_proc/v3/ProcessingRequest.ts';
import type { ProcessingResponse__Output } from '../../src/generated/envoy/service/ext_proc/v3/ProcessingResponse.ts';

type ProcessStream = grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse__Output>;

/** Plays Envoy's side of one ext_proc stream, message by message. */
export class FakeEnvoyStream {
  private readonly replies: ProcessingResponse__Output[] = [];
  private readonly waiters: Array<(reply: ProcessingResponse__Output) => void> = [];
  readonly ended: Promise<grpc.StatusObject>;
  private readonly call: ProcessStream;

  constructor(call: ProcessStream) {
    this.call = call;
    call.on('data', (reply: ProcessingResponse__Output) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(reply);
      else this.replies.push(reply);
    });
    this.ended = new Promise((resolve) => {
      call.on('status', (status: grpc.StatusObject) => resolve(status));
      call.on('error', () => {});
    });
  }

  send(message: ProcessingRequest): void {
    this.call.write(message);
  }

  next(timeoutMs = 2000): Promise<ProcessingResponse__Output> {
    const queued = this.replies.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no reply within timeout')), timeoutMs);
      this.waiters.push((reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
    });
  }

  async exchange(message: ProcessingRequest): Promise<ProcessingResponse__Output> {
    this.send(message);
    return this.next();
  }

  /** Replies that arrived but were not read. */
  get unread(): number {
    return this.replies.length;
  }

  cancel(): void {
    this.call.cancel();
  }
}

export class FakeEnvoy {
  private readonly client: grpc.Client & {
    Process(options?: grpc.CallOptions): ProcessStream;
  };

  constructor(address: string) {
    const Client = grpc.makeGenericClientConstructor(loadExtProcService(), 'ExternalProcessor');
    this.client = new Client(address, grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    }) as unknown as FakeEnvoy['client'];
  }

  open(): FakeEnvoyStream {
    return new FakeEnvoyStream(this.client.Process());
  }

  close(): void {
    this.client.close();
  }
}

export function headerMap(headers: Record<string, string>, form: 'raw' | 'value' = 'raw') {
  return {
    headers: Object.entries(headers).map(([key, value]) =>
      form === 'raw' ? { key, rawValue: Buffer.from(value) } : { key, value },
    ),
  };
}
