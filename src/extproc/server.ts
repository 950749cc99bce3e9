import { once } from 'node:events';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { HealthImplementation } from 'grpc-health-check';
import type { GatewayContext } from '../endpoints/context.ts';
import type { Logger } from '../telemetry/logger.ts';
import { errorFields } from '../telemetry/logger.ts';
import type { Clock, Telemetry } from '../telemetry/telemetry.ts';
import { Exchange, ProtocolError } from './exchange.ts';
import type { ProcessingRequest, ProcessingResponse } from './messages.ts';

const SERVICE_NAME = 'envoy.service.ext_proc.v3.ExternalProcessor';

function protoIncludeDirs(): string[] {
  // Envoy's API protos ship inside @grpc/grpc-js-xds; nothing is copied into this repository.
  const require = createRequire(import.meta.url);
  const root = require.resolve('@grpc/grpc-js-xds/package.json').replace(/package\.json$/, 'deps/');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((dir) => root + dir);
}

/** Options must match the type generation (`npm run gen`): camelCase fields, string enums, Buffers, oneof names. */
export function loadExtProcService(): grpc.ServiceDefinition {
  const definition = protoLoader.loadSync('envoy/service/ext_proc/v3/external_processor.proto', {
    includeDirs: protoIncludeDirs(),
    keepCase: false,
    longs: String,
    enums: String,
    oneofs: true,
    defaults: false,
  });
  const service = definition[SERVICE_NAME];
  if (!service || !('Process' in service)) throw new Error(`${SERVICE_NAME} not found in Envoy's protos`);
  return service as grpc.ServiceDefinition;
}

export interface ExtProcServerOptions {
  address: string;
  gateway: () => GatewayContext;
  telemetry: Telemetry;
  clock: Clock;
  logger: Logger;
  /** Largest message accepted: above the largest buffered body Envoy may send. */
  maxMessageBytes: number;
}

export interface ExtProcServer {
  /** The bound address (the port resolved when 0 was asked). */
  readonly address: string;
  readonly openExchanges: number;
  setServing(serving: boolean): void;
  /** Stops taking new streams, lets open exchanges finish up to the timeout, then cuts the rest. */
  shutdown(timeoutMs: number): Promise<void>;
}

type ProcessCall = grpc.ServerDuplexStream<ProcessingRequest, ProcessingResponse>;

/**
 * Binds one exchange to one gRPC stream. Messages go through a queue and are handled strictly one at a time:
 * while a write waits for back-pressure to clear, later messages (pipelined STREAMED chunks) wait too, so
 * replies always leave in order; an asynchronous decision step can join the same queue. The server ends the
 * stream as soon as the exchange needs nothing more.
 */
class StreamBinding {
  private readonly queue: ProcessingRequest[] = [];
  private running = false;
  private closed = false;
  private readonly call: ProcessCall;
  private readonly exchange: Exchange;
  private readonly logger: Logger;
  private readonly telemetry: Telemetry;
  private readonly onClosed: () => void;

  constructor(call: ProcessCall, exchange: Exchange, logger: Logger, telemetry: Telemetry, onClosed: () => void) {
    this.call = call;
    this.exchange = exchange;
    this.logger = logger;
    this.telemetry = telemetry;
    this.onClosed = onClosed;
    call.on('data', (message: ProcessingRequest) => this.enqueue(message));
    call.on('end', () => this.close('incomplete'));
    call.on('cancelled', () => this.close('cancelled'));
    call.on('error', (error) => {
      this.logger.debug('ext_proc stream error', errorFields(error));
      this.close('cancelled');
    });
  }

  private enqueue(message: ProcessingRequest): void {
    this.queue.push(message);
    if (!this.running) void this.drain();
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (!this.closed) {
        const message = this.queue.shift();
        if (!message) break;
        let response: ProcessingResponse | undefined;
        try {
          response = this.exchange.process(message);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
          this.telemetry.protocolError('empty_request');
          this.call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: error.message });
          this.close('incomplete');
          return;
        }
        if (response && !this.call.write(response)) await Promise.race([once(this.call, 'drain'), once(this.call, 'close')]);
        if (this.exchange.done) {
          this.finishCall();
          return;
        }
      }
    } catch (error) {
      this.logger.error('ext_proc stream failed', errorFields(error));
      this.call.destroy(error as Error);
      this.close('incomplete');
    } finally {
      this.running = false;
    }
  }

  private finishCall(): void {
    if (this.closed) return;
    this.closed = true;
    this.call.end();
    this.onClosed();
  }

  private close(reason: 'incomplete' | 'cancelled'): void {
    this.exchange.interrupt(reason);
    if (this.closed) return;
    this.closed = true;
    if (!this.call.writableEnded && !this.call.destroyed) this.call.end();
    this.onClosed();
  }
}

/**
 * Envoy ends every ext_proc stream with RST_STREAM, and nghttp2's rapid-reset guard (1000 resets, then 33 a
 * second) then closes the HTTP/2 connection about every thousand requests, failing the streams in flight (seen
 * as 500s under load). The only peer here is the Envoy beside us in the pod, so the guard is raised to a rate no
 * real load reaches. grpc-js has no option for it: its documented http2 server options object is amended
 * before any port is bound.
 */
function allowEnvoyStreamResets(server: grpc.Server, logger: Logger): void {
  const holder = server as unknown as { commonServerOptions?: Record<string, unknown> };
  if (typeof holder.commonServerOptions !== 'object' || holder.commonServerOptions === null) {
    logger.warn('cannot raise the HTTP/2 stream reset limit: grpc-js internals changed; expect reconnects under load');
    return;
  }
  holder.commonServerOptions.streamResetBurst = 1_000_000;
  holder.commonServerOptions.streamResetRate = 1_000_000;
}

export async function startExtProcServer(options: ExtProcServerOptions): Promise<ExtProcServer> {
  const { logger, telemetry, clock } = options;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes,
    'grpc.max_send_message_length': options.maxMessageBytes,
    // Envoy keeps one HTTP/2 connection with many streams; answer its keepalive pings.
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  });
  allowEnvoyStreamResets(server, logger);
  const health = new HealthImplementation({ '': 'SERVING', [SERVICE_NAME]: 'SERVING' });
  health.addToServer(server);

  let open = 0;
  server.addService(loadExtProcService(), {
    Process: (call: ProcessCall) => {
      open += 1;
      const exchange = new Exchange(options.gateway(), telemetry, clock, logger);
      new StreamBinding(call, exchange, logger, telemetry, () => {
        open -= 1;
      });
    },
  });

  const bindAddress = options.address;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(bindAddress, grpc.ServerCredentials.createInsecure(), (error, boundPort) =>
      error ? reject(error) : resolve(boundPort),
    );
  });
  const address = bindAddress.startsWith('unix:') ? bindAddress : bindAddress.replace(/:\d+$/, `:${port}`);
  logger.info('ext_proc server listening', { address });

  return {
    address,
    get openExchanges() {
      return open;
    },
    setServing(serving) {
      const status = serving ? 'SERVING' : 'NOT_SERVING';
      health.setStatus('', status);
      health.setStatus(SERVICE_NAME, status);
    },
    async shutdown(timeoutMs) {
      const graceful = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const result = await Promise.race([graceful.then(() => 'done' as const), deadline]);
      clearTimeout(timer);
      if (result === 'timeout') {
        logger.warn('drain timeout: cutting open exchanges', { open });
        server.forceShutdown();
      }
    },
  };
}
