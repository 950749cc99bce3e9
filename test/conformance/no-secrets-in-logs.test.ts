import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryAccessLog } from '../../src/access/record.ts';
import { parseConfig } from '../../src/config/load.ts';
import { startGateway, type RunningGateway } from '../../src/gateway/gateway.ts';
import { hashKey } from '../../src/identity/virtual-keys.ts';
import { createLogger } from '../../src/telemetry/logger.ts';
import { FakeEnvoy, headerMap } from '../support/extproc-client.ts';

const KEY = 'pc-key-that-must-never-be-logged';
const PROVIDER_SECRET = 'sk-provider-secret-never-logged';
const PROMPT = 'my social security number is 078-05-1120';
const lines: string[] = [];
const accessLog = new MemoryAccessLog();
let gateway: RunningGateway;
let envoy: FakeEnvoy;

beforeAll(async () => {
  const config = parseConfig({
    server: { extproc_address: '127.0.0.1:0', admin_address: '127.0.0.1:0', log_level: 'debug' },
    upstreams: [{ name: 'p', base_url: 'https://p.example/v1', schema: 'openai', credential: { source: 'env', name: 'P_KEY' } }],
    models: [{ name: 'gpt-4o', upstream: 'p', upstream_model: 'gpt-4o' }],
    keys: [{ id: 'k', hash: hashKey(KEY) }],
  });
  gateway = await startGateway(config, {
    accessLog,
    logger: createLogger('test', 'debug', (line) => lines.push(line)),
    env: { P_KEY: PROVIDER_SECRET },
    processMetrics: false,
  });
  envoy = new FakeEnvoy(gateway.extproc.address);
});
afterAll(async () => {
  envoy.close();
  await gateway.stop();
});

describe('logs and access records carry facts, never secrets or prompt text', () => {
  it('across a routed exchange, a rejected one and a cancelled one', async () => {
    const headers = (authorization: string) =>
      headerMap({ ':method': 'POST', ':path': '/v1/chat/completions', authorization, 'content-type': 'application/json' });
    const body = Buffer.from(JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: PROMPT }] }));

    const routed = envoy.open();
    await routed.exchange({ requestHeaders: { headers: headers(`Bearer ${KEY}`) } });
    const reply = await routed.exchange({ requestBody: { body, endOfStream: true } });
    expect(reply.requestBody?.response?.headerMutation?.setHeaders?.some((option) => String(option.header?.rawValue).includes(PROVIDER_SECRET))).toBe(true);
    routed.cancel();

    const malformed = envoy.open();
    await malformed.exchange({ requestHeaders: { headers: headers(`Bearer ${KEY}`) } });
    await malformed.exchange({ requestBody: { body: Buffer.from(`{"model": "gpt-4o", "messages": "${PROMPT}`), endOfStream: true } });

    const wrongKey = envoy.open();
    await wrongKey.exchange({ requestHeaders: { headers: headers(`Bearer ${KEY}-typo`) } });
    await gateway.stop();

    await expect.poll(() => accessLog.records.length).toBe(3);
    const everything = [...lines, ...accessLog.records.map((record) => JSON.stringify(record))].join('\n');
    expect(lines.length).toBeGreaterThan(0);
    for (const secret of [KEY, PROVIDER_SECRET, PROMPT, '078-05-1120']) expect(everything).not.toContain(secret);
  });
});
