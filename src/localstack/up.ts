import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfigFile } from '../config/load.ts';
import { renderEnvoyYaml } from '../envoyconfig/render.ts';
import { startGateway } from '../gateway/gateway.ts';
import { startMockLlm } from '../mockllm/server.ts';
import { startEnvoy } from './processes.ts';

const DEMO_KEY = 'pc-demo-local-only-not-a-secret';

/**
 * `make up`: the bundled mock provider and Portcullis in this process, Envoy as a child, all on loopback.
 * Works offline; Ctrl-C stops everything.
 */
export async function runLocalStack(configFile: string): Promise<void> {
  const config = loadConfigFile(configFile);
  const runDir = resolve('.run');
  mkdirSync(runDir, { recursive: true });

  const mockUpstream = config.upstreams.find((upstream) => upstream.name === 'mock');
  const mock = mockUpstream
    ? await startMockLlm({ host: '127.0.0.1', port: Number(new URL(mockUpstream.base_url).port) })
    : undefined;
  const gateway = await startGateway(config);
  const envoy = await startEnvoy({
    yaml: renderEnvoyYaml(config),
    workDir: runDir,
    adminAddress: config.envoy.admin_address,
    logLevel: 'warn',
    inheritOutput: true,
  });

  const base = `http://${config.envoy.listener_address}`;
  process.stderr.write(
    [
      '',
      'Portcullis is up.',
      `  gateway (Envoy):   ${base}/v1      OpenAI-compatible; point your SDK's base URL here`,
      `  metrics:           ${gateway.admin.url}/metrics`,
      `  Envoy admin:       ${envoy.adminUrl}`,
      mock ? `  mock provider:     ${mock.url}` : '',
      `  demo key:          ${DEMO_KEY}`,
      '',
      'Try it:',
      `  curl -s ${base}/v1/chat/completions -H 'Authorization: Bearer ${DEMO_KEY}' \\`,
      `    -H 'Content-Type: application/json' -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'`,
      '',
      'Access records are printed below as JSON lines. Ctrl-C stops the stack.',
      '',
    ].join('\n'),
  );

  await new Promise<void>((resolveStop) => {
    const stop = () => resolveStop();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    envoy.process.once('exit', stop);
  });
  await envoy.stop();
  await gateway.stop();
  await mock?.close();
}
