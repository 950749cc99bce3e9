import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigFile, parseConfig } from '../../src/config/load.ts';
import { renderEnvoyYaml } from '../../src/envoyconfig/render.ts';
import { validateEnvoyConfig } from '../../src/localstack/processes.ts';

const workDir = mkdtempSync(join(tmpdir(), 'portcullis-envoy-config-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function bundledConfig() {
  const config = loadConfigFile('deploy/local/portcullis.yaml');
  return { ...config, envoy: { ...config.envoy, access_log: '/dev/null' } };
}

describe('the rendered Envoy bootstrap', () => {
  it('passes envoy --mode validate for the bundled configuration', async () => {
    const result = await validateEnvoyConfig(renderEnvoyYaml(bundledConfig()), workDir);
    expect(result.output).toContain('OK');
    expect(result.ok).toBe(true);
  });

  it('passes validation with an HTTPS provider, a unix-socket ext_proc address and fail-open', async () => {
    const config = parseConfig({
      server: { extproc_address: `unix:${join(workDir, 'extproc.sock')}` },
      envoy: { failure_mode_allow: true, access_log: '/dev/null' },
      upstreams: [
        { name: 'openai', base_url: 'https://api.openai.com/v1', schema: 'openai', credential: { source: 'env', name: 'OPENAI_API_KEY' } },
        { name: 'local-vllm', base_url: 'http://10.0.0.5:8000/v1', schema: 'openai' },
      ],
      models: [
        { name: 'gpt-4o', upstream: 'openai', upstream_model: 'gpt-4o' },
        { name: 'llama', upstream: 'local-vllm', upstream_model: 'meta-llama/Llama-3.1-8B-Instruct' },
      ],
    });
    const yaml = renderEnvoyYaml(config);
    const result = await validateEnvoyConfig(yaml, workDir);
    expect(result.ok, result.output).toBe(true);
    expect(yaml).toContain('failure_mode_allow: true');
    expect(yaml).toContain('sni: api.openai.com');
  });

  it('passes validation for the Kubernetes pod configuration (Unix socket between the containers)', async () => {
    const config = loadConfigFile('deploy/kubernetes/portcullis.yaml');
    // /dev/stdout is the container's log stream; under the test runner Envoy's stdout is a socket it cannot open.
    const yaml = renderEnvoyYaml({ ...config, envoy: { ...config.envoy, access_log: '/dev/null' } });
    expect(yaml).toContain('path: /var/run/portcullis/extproc.sock');
    const result = await validateEnvoyConfig(yaml, workDir);
    expect(result.ok, result.output).toBe(true);
  });

  it('is rejected by Envoy when broken, so the validation test can fail', async () => {
    const broken = renderEnvoyYaml(bundledConfig()).replace('allow_mode_override: true', 'allow_mode_override: "perhaps"');
    const result = await validateEnvoyConfig(broken, workDir);
    expect(result.ok).toBe(false);
  });

  it('carries the ext_proc settings that must not drift', () => {
    const bootstrap = parse(renderEnvoyYaml(bundledConfig()));
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const extProc = hcm.http_filters[0].typed_config;
    expect(hcm.http_filters.map((filter: { name: string }) => filter.name)).toEqual([
      'envoy.filters.http.ext_proc',
      'envoy.filters.http.router',
    ]);
    expect(extProc).toMatchObject({
      failure_mode_allow: false,
      message_timeout: '5.000s',
      max_message_timeout: '30.000s',
      allow_mode_override: true,
      processing_mode: { request_body_mode: 'BUFFERED', response_body_mode: 'BUFFERED', response_header_mode: 'SEND' },
      metadata_options: { receiving_namespaces: { untyped: ['portcullis'] } },
    });
    const routes = hcm.route_config.virtual_hosts[0].routes;
    expect(routes[0]).toMatchObject({
      match: { headers: [{ name: 'x-portcullis-upstream', string_match: { exact: 'mock' } }] },
      route: { cluster: 'upstream_mock', auto_host_rewrite: true },
    });
    expect(routes.at(-1).direct_response.status).toBe(503);
  });
});
