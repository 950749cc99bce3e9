import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig, parseConfigText } from '../../src/config/load.ts';
import { resolveCredentials } from '../../src/providers/credentials.ts';

const minimal = {
  upstreams: [{ name: 'mock', base_url: 'http://127.0.0.1:8081/v1', schema: 'openai' }],
  models: [{ name: 'gpt-4o', upstream: 'mock', upstream_model: 'mock-gpt-4o' }],
};
const hash = `sha256:${'a'.repeat(64)}`;

function problems(document: unknown): string {
  try {
    parseConfig(document);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('configuration was accepted');
}

describe('configuration', () => {
  it('loads the bundled local configuration with defaults filled in', () => {
    const config = loadConfigFile('deploy/local/portcullis.yaml');
    expect(config.envoy.failure_mode_allow).toBe(false);
    expect(config.server.drain_timeout_ms).toBe(30_000);
    expect(config.upstreams[0]?.credential).toEqual({ source: 'none' });
    expect(config.keys[0]?.models).toEqual(['*']);
  });

  it('fills every default from a minimal document', () => {
    const config = parseConfig(minimal);
    expect(config.envoy.message_timeout_ms).toBe(5000);
    expect(config.limits.max_request_body_bytes).toBe(4 * 1024 * 1024);
    expect(config.upstreams[0]?.timeout_ms).toBe(600_000);
  });

  it('reports each problem with its path', () => {
    expect(problems({ ...minimal, models: [{ name: 'x', upstream: 'nowhere', upstream_model: 'y' }] })).toContain('models.0.upstream: unknown upstream "nowhere"');
    expect(problems({ ...minimal, models: [...minimal.models, ...minimal.models] })).toContain('duplicate model "gpt-4o"');
    expect(problems({ ...minimal, upstreams: [...minimal.upstreams, ...minimal.upstreams] })).toContain('duplicate upstream "mock"');
    expect(problems({ ...minimal, surprise: true })).toContain('surprise');
    expect(problems({ ...minimal, keys: [{ id: 'k', hash: 'plaintext-key' }] })).toContain('keys.0.hash');
    expect(problems({ ...minimal, keys: [{ id: 'k', hash, models: ['gpt-5'] }] })).toContain('keys.0.models.0: unknown model "gpt-5"');
    expect(problems({ ...minimal, upstreams: [{ ...minimal.upstreams[0], base_url: 'ftp://x' }] })).toContain('upstreams.0.base_url');
    expect(problems({ ...minimal, upstreams: [{ ...minimal.upstreams[0], name: 'Has Spaces' }] })).toContain('upstreams.0.name');
    expect(problems({ ...minimal, envoy: { message_timeout_ms: 5000, max_message_timeout_ms: 1000 } })).toContain('envoy.max_message_timeout_ms');
    expect(problems({ ...minimal, server: { extproc_address: 'localhost' } })).toContain('server.extproc_address');
  });

  it('rejects YAML that does not parse, saying so', () => {
    expect(() => parseConfigText('upstreams: [', 'test.yaml')).toThrow(/test.yaml is not valid YAML/);
  });
});

describe('credentials', () => {
  const config = parseConfig({
    ...minimal,
    upstreams: [
      { name: 'none', base_url: 'http://a/v1', schema: 'openai' },
      { name: 'env', base_url: 'https://b/v1', schema: 'openai', credential: { source: 'env', name: 'PROVIDER_KEY' } },
      { name: 'file', base_url: 'https://c/v1', schema: 'openai', credential: { source: 'file', path: '/secrets/key' } },
    ],
    models: [{ name: 'm', upstream: 'none', upstream_model: 'm' }],
  });

  it('resolves env and file secrets once, trimmed', () => {
    const resolved = resolveCredentials(config, { PROVIDER_KEY: ' sk-env \n' }, () => 'sk-file\n');
    expect(resolved.get('none')).toBeUndefined();
    expect(resolved.get('env')).toBe('sk-env');
    expect(resolved.get('file')).toBe('sk-file');
  });

  it('fails at start-up when a secret is missing or empty', () => {
    expect(() => resolveCredentials(config, {}, () => 'x')).toThrow(/PROVIDER_KEY is not set/);
    expect(() => resolveCredentials(config, { PROVIDER_KEY: 'k' }, () => '  ')).toThrow(/is empty/);
    expect(() =>
      resolveCredentials(config, { PROVIDER_KEY: 'k' }, () => {
        throw new Error('ENOENT');
      }),
    ).toThrow(/cannot read credential file \/secrets\/key/);
  });
});
