import OpenAI from 'openai';
import { afterAll, beforeAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryAccessLog } from '../../src/access/record.ts';
import { parseConfig } from '../../src/config/load.ts';
import type { GatewayConfig } from '../../src/config/schema.ts';
import { renderEnvoyYaml } from '../../src/envoyconfig/render.ts';
import { startGateway, type RunningGateway } from '../../src/gateway/gateway.ts';
import { hashKey } from '../../src/identity/virtual-keys.ts';
import { freePort, startEnvoy, type EnvoyProcess } from '../../src/localstack/processes.ts';
import { startMockLlm, type MockLlm } from '../../src/mockllm/server.ts';
import { silentLogger } from '../../src/telemetry/logger.ts';

export const TEST_KEY = 'pc-test-key-for-the-e2e-suite';
export const LIMITED_KEY = 'pc-test-key-limited-to-one-model';

export interface Stack {
  readonly config: GatewayConfig;
  /** Envoy's listener, where clients connect: http://127.0.0.1:PORT */
  readonly baseUrl: string;
  readonly mock: MockLlm;
  readonly envoy: EnvoyProcess;
  readonly accessLog: MemoryAccessLog;
  readonly gateway: RunningGateway | undefined;
  startGateway(): Promise<void>;
  stopGateway(): Promise<void>;
  /** Envoy's own access log lines (JSON) written so far. */
  envoyAccessLog(): Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export interface StackOptions {
  maxRequestBodyBytes?: number;
  messageTimeoutMs?: number;
  upstreamTimeoutMs?: number;
}

/** Real Envoy (child process) in front of Portcullis and the mock provider (in this process), on free ports. */
export async function startStack(options: StackOptions = {}): Promise<Stack> {
  const workDir = mkdtempSync(join(tmpdir(), 'portcullis-e2e-'));
  const mock = await startMockLlm({ port: 0 });
  const [listenerPort, envoyAdminPort, extprocPort, adminPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const envoyAccessLogPath = join(workDir, 'envoy-access.jsonl');
  const config = parseConfig({
    server: { extproc_address: `127.0.0.1:${extprocPort}`, admin_address: `127.0.0.1:${adminPort}`, drain_timeout_ms: 2000 },
    envoy: {
      listener_address: `127.0.0.1:${listenerPort}`,
      admin_address: `127.0.0.1:${envoyAdminPort}`,
      access_log: envoyAccessLogPath,
      ...(options.messageTimeoutMs ? { message_timeout_ms: options.messageTimeoutMs } : {}),
    },
    limits: { max_request_body_bytes: options.maxRequestBodyBytes ?? 64 * 1024 },
    upstreams: [
      {
        name: 'mock',
        base_url: `${mock.url}/v1`,
        schema: 'openai',
        region: 'test',
        ...(options.upstreamTimeoutMs ? { timeout_ms: options.upstreamTimeoutMs } : {}),
      },
      // Nothing listens on the discard port: every connection is refused.
      { name: 'unreachable', base_url: 'http://127.0.0.1:9/v1', schema: 'openai', region: 'test' },
    ],
    models: [
      { name: 'gpt-4o-mini', upstream: 'mock', upstream_model: 'mock-gpt-4o-mini' },
      { name: 'gpt-4o', upstream: 'mock', upstream_model: 'mock-gpt-4o' },
      { name: 'text-embedding-3-small', upstream: 'mock', upstream_model: 'mock-embedding-small' },
      { name: 'gpt-offline', upstream: 'unreachable', upstream_model: 'offline' },
    ],
    keys: [
      { id: 'test-team', hash: hashKey(TEST_KEY) },
      { id: 'limited', hash: hashKey(LIMITED_KEY), models: ['gpt-4o-mini'] },
    ],
  });
  const accessLog = new MemoryAccessLog();
  const launchGateway = () => startGateway(config, { accessLog, logger: silentLogger, processMetrics: false });
  let gateway: RunningGateway | undefined = await launchGateway();
  const envoy = await startEnvoy({
    yaml: renderEnvoyYaml(config),
    workDir,
    adminAddress: config.envoy.admin_address,
    concurrency: 1,
  });
  return {
    config,
    baseUrl: `http://127.0.0.1:${listenerPort}`,
    mock,
    envoy,
    accessLog,
    get gateway() {
      return gateway;
    },
    async startGateway() {
      gateway = await launchGateway();
    },
    async stopGateway() {
      await gateway?.stop();
      gateway = undefined;
    },
    envoyAccessLog() {
      return readFileSync(envoyAccessLogPath, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    async close() {
      await envoy.stop();
      await gateway?.stop();
      await mock.close();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}

/** A raw request through Envoy, for inputs an SDK would never send. */
export async function rawRequest(
  stack: Stack,
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<{ status: number; headers: Headers; json: unknown; text: string }> {
  const response = await fetch(`${stack.baseUrl}${path}`, {
    method: init.method ?? 'POST',
    headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json', ...init.headers },
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, json, text };
}

/** An OpenAI SDK client pointed at the stack's Envoy listener; no retries, so each call is one exchange. */
export function clientFor(stack: Stack, apiKey = TEST_KEY): OpenAI {
  return new OpenAI({ apiKey, baseURL: `${stack.baseUrl}/v1`, maxRetries: 0 });
}

/** Starts one stack for the file's tests and closes it after them. */
export function useStack(options: StackOptions = {}): { readonly stack: Stack; readonly client: OpenAI } {
  let current: { stack: Stack; client: OpenAI } | undefined;
  beforeAll(async () => {
    const stack = await startStack(options);
    current = { stack, client: clientFor(stack) };
  });
  afterAll(async () => {
    await current?.stack.close();
  });
  return {
    get stack() {
      if (!current) throw new Error('the stack is not started yet');
      return current.stack;
    },
    get client() {
      if (!current) throw new Error('the stack is not started yet');
      return current.client;
    },
  };
}
