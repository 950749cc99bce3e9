import * as grpc from '@grpc/grpc-js';
import { service as healthService } from 'grpc-health-check';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryAccessLog } from '../../src/access/record.ts';
import { parseConfig } from '../../src/config/load.ts';
import { startGateway, type RunningGateway } from '../../src/gateway/gateway.ts';
import { hashKey } from '../../src/identity/virtual-keys.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';
import { FakeEnvoy, headerMap } from '../support/extproc-client.ts';

const KEY = 'pc-lifecycle-key';
const config = parseConfig({
  server: { extproc_address: '127.0.0.1:0', admin_address: '127.0.0.1:0', drain_timeout_ms: 5000 },
  upstreams: [{ name: 'primary', base_url: 'http://127.0.0.1:9/v1', schema: 'openai' }],
  models: [{ name: 'gpt-4o', upstream: 'primary', upstream_model: 'gpt-4o' }],
  keys: [{ id: 'lifecycle', hash: hashKey(KEY) }],
});

let gateway: RunningGateway | undefined;
let envoy: FakeEnvoy | undefined;
afterEach(async () => {
  envoy?.close();
  await gateway?.stop();
});

interface HealthCheckClient extends grpc.Client {
  check(
    request: { service: string },
    callback: (error: grpc.ServiceError | null, response?: { status: string }) => void,
  ): void;
}

function checkHealth(address: string, service: string): Promise<string> {
  const Client = grpc.makeGenericClientConstructor(healthService, 'Health');
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as HealthCheckClient;
  return new Promise((resolve, reject) =>
    client.check({ service }, (error, response) => {
      client.close();
      if (error) reject(error);
      else resolve(String(response?.status));
    }),
  );
}

const headers = headerMap({ ':method': 'POST', ':path': '/v1/chat/completions', authorization: `Bearer ${KEY}`, 'content-type': 'application/json' });
const body = Buffer.from(JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }));

describe('serving lifecycle', () => {
  it('answers the standard gRPC health service', async () => {
    gateway = await startGateway(config, { logger: silentLogger, accessLog: new MemoryAccessLog(), processMetrics: false });
    expect(await checkHealth(gateway.extproc.address, 'envoy.service.ext_proc.v3.ExternalProcessor')).toBe('SERVING');
    expect(await checkHealth(gateway.extproc.address, '')).toBe('SERVING');
  });

  it('drains on stop: not ready, no new streams, the open exchange still completes', async () => {
    const accessLog = new MemoryAccessLog();
    gateway = await startGateway(config, { logger: silentLogger, accessLog, processMetrics: false });
    envoy = new FakeEnvoy(gateway.extproc.address);
    const open = envoy.open();
    await open.exchange({ requestHeaders: { headers } });
    await open.exchange({ requestBody: { body, endOfStream: true } });

    const stopped = gateway.stop();
    const ready = await fetch(`${gateway.admin.url}/readyz`).catch(() => undefined);
    expect(ready === undefined || ready.status === 503).toBe(true);

    const late = envoy.open();
    late.send({ requestHeaders: { headers } });
    expect((await late.ended).code).not.toBe(grpc.status.OK);

    const reply = await open.exchange({ responseHeaders: { headers: headerMap({ ':status': '200', 'content-type': 'application/json' }) } });
    expect(reply.response).toBe('responseHeaders');
    await open.exchange({ responseBody: { body: Buffer.from('{"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}'), endOfStream: true } });
    await stopped;
    expect(accessLog.records.filter((record) => record.outcome === 'ok')).toHaveLength(1);
    gateway = undefined;
  });

  it('exposes Prometheus metrics, liveness and readiness on the admin port', async () => {
    gateway = await startGateway(config, { logger: silentLogger, accessLog: new MemoryAccessLog(), processMetrics: false });
    envoy = new FakeEnvoy(gateway.extproc.address);
    const stream = envoy.open();
    await stream.exchange({ requestHeaders: { headers: headerMap({ ':method': 'GET', ':path': '/v1/nowhere', authorization: `Bearer ${KEY}` }) } });
    await stream.ended;
    expect((await fetch(`${gateway.admin.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${gateway.admin.url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${gateway.admin.url}/metrics`)).text();
    expect(metrics).toMatch(/portcullis_requests_total\{operation="none",model="",status_class="4xx",outcome="rejected"\} 1/);
    expect(metrics).toMatch(/portcullis_errors_total\{code="unknown_path"\} 1/);
    expect(metrics).toContain('portcullis_extproc_phase_seconds_bucket{le="0.001",phase="request_headers"}');
    expect(metrics).toContain('portcullis_open_streams 0');
  });
});

describe('Envoy resets every ext_proc stream when it is done with it', () => {
  it('keeps serving on one connection past nghttp2’s rapid-reset guard (1000 resets)', async () => {
    gateway = await startGateway(config, { logger: silentLogger, accessLog: new MemoryAccessLog(), processMetrics: false });
    envoy = new FakeEnvoy(gateway.extproc.address);
    const failures: string[] = [];
    const oneExchange = async () => {
      const stream = envoy!.open();
      try {
        const reply = await stream.exchange({ requestHeaders: { headers } });
        if (reply.response !== 'requestHeaders') failures.push(String(reply.response));
      } catch (error) {
        failures.push((error as Error).message);
      }
      stream.cancel(); // RST_STREAM, as Envoy sends
    };
    for (let batch = 0; batch < 60; batch += 1) {
      await Promise.all(Array.from({ length: 25 }, oneExchange));
    }
    expect(failures).toEqual([]);
  });
});
