import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig, parseConfigText } from '../../src/config/load.ts';
import { configSchema } from '../../src/config/schema.ts';
import { resolveCredentials } from '../../src/providers/credentials.ts';

const bundledConfig = fileURLToPath(new URL('../../deploy/local/portcullis.yaml', import.meta.url));
const validHash = `sha256:${'0123456789abcdef'.repeat(4)}`;

const minimalYaml = `
upstreams:
  - name: mock
    base_url: http://127.0.0.1:8081/v1
    schema: openai
models:
  - name: gpt-4o
    upstream: mock
    upstream_model: mock-gpt-4o
`;

interface Doc {
  upstreams: Array<Record<string, unknown>>;
  models: Array<Record<string, unknown>>;
  keys?: Array<Record<string, unknown>>;
  [field: string]: unknown;
}

function minimalDoc(): Doc {
  return {
    upstreams: [{ name: 'mock', base_url: 'http://127.0.0.1:8081/v1', schema: 'openai' }],
    models: [{ name: 'gpt-4o', upstream: 'mock', upstream_model: 'mock-gpt-4o' }],
  };
}

/** The ConfigError message for a document that must be rejected. */
function rejection(document: unknown): string {
  let caught: unknown;
  try {
    parseConfig(document, 'test.yaml');
  } catch (error) {
    caught = error;
  }
  expect(caught, 'configuration was accepted').toBeInstanceOf(ConfigError);
  return (caught as ConfigError).message;
}

describe('the bundled local configuration', () => {
  const config = loadConfigFile(bundledConfig);

  it('loads and fills the defaults it does not spell out', () => {
    expect(config.server.drain_timeout_ms).toBe(30_000);
    expect(config.server.log_level).toBe('info');
    expect(config.envoy.failure_mode_allow).toBe(false);
    expect(config.envoy.max_downstream_connections).toBe(50_000);
    expect(config.envoy.upstream_ca_bundle).toBe('/etc/ssl/certs/ca-certificates.crt');
    expect(config.limits.max_response_body_bytes).toBe(16 * 1024 * 1024);
    expect(config.upstreams[0]?.timeout_ms).toBe(600_000);
  });

  it('keeps the values it does spell out', () => {
    expect(config.server.extproc_address).toBe('127.0.0.1:50051');
    expect(config.envoy.message_timeout_ms).toBe(5000);
    expect(config.upstreams.map((upstream) => upstream.name)).toEqual(['mock']);
    expect(config.upstreams[0]?.region).toBe('local');
    expect(config.upstreams[0]?.credential).toEqual({ source: 'none' });
    expect(config.models.map((model) => model.name)).toEqual(['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small']);
    expect(config.keys).toHaveLength(1);
    expect(config.keys[0]).toMatchObject({ id: 'demo', models: ['*'], disabled: false });
  });
});

describe('parseConfigText', () => {
  it('fills every section from a minimal document', () => {
    const config = parseConfigText(minimalYaml);
    expect(config.server).toEqual({
      extproc_address: '127.0.0.1:50051',
      admin_address: '127.0.0.1:9090',
      drain_timeout_ms: 30_000,
      log_level: 'info',
      access_log: '-',
    });
    expect(config.envoy.message_timeout_ms).toBe(5000);
    expect(config.envoy.max_message_timeout_ms).toBe(30_000);
    expect(config.envoy.failure_mode_allow).toBe(false);
    expect(config.limits).toEqual({ max_request_body_bytes: 4 * 1024 * 1024, max_response_body_bytes: 16 * 1024 * 1024 });
    expect(config.upstreams[0]).toMatchObject({ credential: { source: 'none' }, region: 'unspecified', timeout_ms: 600_000 });
    expect(config.keys).toEqual([]);
  });

  it('accepts unix socket and bracketed IPv6 addresses', () => {
    const config = parseConfig({
      ...minimalDoc(),
      server: { extproc_address: 'unix:/run/portcullis.sock', admin_address: '[::1]:9090' },
    });
    expect(config.server.extproc_address).toBe('unix:/run/portcullis.sock');
    expect(config.server.admin_address).toBe('[::1]:9090');
  });

  it('rejects invalid YAML with a ConfigError naming the origin', () => {
    expect(() => parseConfigText('upstreams: [\n  - {name: x', 'broken.yaml')).toThrow(ConfigError);
    expect(() => parseConfigText('upstreams: [\n  - {name: x', 'broken.yaml')).toThrow(/^broken\.yaml is not valid YAML/);
  });

  it('rejects an empty document and a non-object document', () => {
    expect(() => parseConfigText('')).toThrow(ConfigError);
    expect(() => parseConfigText('- just\n- a list\n')).toThrow(ConfigError);
  });
});

describe('configuration rejections name the offending path', () => {
  it('a model naming an unknown upstream', () => {
    const doc = minimalDoc();
    doc.models = [{ name: 'x', upstream: 'nowhere', upstream_model: 'y' }];
    const message = rejection(doc);
    expect(message).toMatch(/^invalid test\.yaml:/);
    expect(message).toContain('models.0.upstream: unknown upstream "nowhere"');
  });

  it('duplicate model names (reported on the second)', () => {
    const doc = minimalDoc();
    doc.models = [
      { name: 'm', upstream: 'mock', upstream_model: 'a' },
      { name: 'm', upstream: 'mock', upstream_model: 'b' },
    ];
    expect(rejection(doc)).toContain('models.1.name: duplicate model "m"');
  });

  it('duplicate upstream names (reported on the second)', () => {
    const doc = minimalDoc();
    doc.upstreams = [
      { name: 'mock', base_url: 'http://a/v1', schema: 'openai' },
      { name: 'mock', base_url: 'http://b/v1', schema: 'openai' },
    ];
    expect(rejection(doc)).toContain('upstreams.1.name: duplicate upstream "mock"');
  });

  it('unknown top-level and nested fields (strict objects)', () => {
    expect(rejection({ ...minimalDoc(), surprise: 1 })).toMatch(/\(root\): .*surprise/);
    expect(rejection({ ...minimalDoc(), server: { drain_timeout: 5 } })).toMatch(/server: .*drain_timeout/);
    const doc = minimalDoc();
    doc.models = [{ name: 'gpt-4o', upstream: 'mock', upstream_model: 'm', temperature: 1 }];
    expect(rejection(doc)).toMatch(/models\.0: .*temperature/);
  });

  it('a key with a malformed hash', () => {
    for (const hash of ['plaintext', `sha256:${'a'.repeat(63)}`, `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(64)}`, `sha256:${'g'.repeat(64)}`]) {
      expect(rejection({ ...minimalDoc(), keys: [{ id: 'k', hash }] }), hash).toContain('keys.0.hash: expected sha256:<64 hex>');
    }
  });

  it('a key referencing an unknown model, and duplicate key ids and hashes', () => {
    expect(rejection({ ...minimalDoc(), keys: [{ id: 'k', hash: validHash, models: ['gpt-4o', 'gpt-9'] }] })).toContain(
      'keys.0.models.1: unknown model "gpt-9"',
    );
    const duplicates = rejection({
      ...minimalDoc(),
      keys: [
        { id: 'k', hash: validHash },
        { id: 'k', hash: validHash },
      ],
    });
    expect(duplicates).toContain('keys.1.id: duplicate key id "k"');
    expect(duplicates).toContain('keys.1.hash: duplicate key hash');
  });

  it('a key with an empty model list', () => {
    expect(rejection({ ...minimalDoc(), keys: [{ id: 'k', hash: validHash, models: [] }] })).toContain('keys.0.models');
  });

  it('a bad base_url', () => {
    for (const baseUrl of ['ftp://example.com/v1', 'not a url', 'example.com/v1']) {
      const doc = minimalDoc();
      doc.upstreams = [{ name: 'mock', base_url: baseUrl, schema: 'openai' }];
      expect(rejection(doc), baseUrl).toContain('upstreams.0.base_url');
    }
  });

  it('an upstream name Envoy cannot use as a cluster name, and an unknown schema', () => {
    const doc = minimalDoc();
    doc.upstreams = [{ name: 'Mock', base_url: 'http://a/v1', schema: 'anthropic' }];
    const message = rejection(doc);
    expect(message).toContain('upstreams.0.name');
    expect(message).toContain('upstreams.0.schema');
  });

  it('max_message_timeout_ms below message_timeout_ms', () => {
    expect(rejection({ ...minimalDoc(), envoy: { message_timeout_ms: 5000, max_message_timeout_ms: 4999 } })).toContain(
      'envoy.max_message_timeout_ms: must be >= message_timeout_ms',
    );
    // Equal is fine; and the default max (30000) is checked against an explicit message timeout.
    expect(parseConfig({ ...minimalDoc(), envoy: { message_timeout_ms: 5000, max_message_timeout_ms: 5000 } }).envoy.max_message_timeout_ms).toBe(5000);
    expect(rejection({ ...minimalDoc(), envoy: { message_timeout_ms: 60_000 } })).toContain('envoy.max_message_timeout_ms');
  });

  it('malformed addresses and out-of-range numbers', () => {
    expect(rejection({ ...minimalDoc(), server: { extproc_address: 'localhost' } })).toContain('server.extproc_address');
    expect(rejection({ ...minimalDoc(), server: { drain_timeout_ms: -1 } })).toContain('server.drain_timeout_ms');
    expect(rejection({ ...minimalDoc(), server: { log_level: 'trace' } })).toContain('server.log_level');
    expect(rejection({ ...minimalDoc(), limits: { max_request_body_bytes: 1.5 } })).toContain('limits.max_request_body_bytes');
  });

  it('missing upstreams or models', () => {
    expect(rejection({ models: minimalDoc().models })).toContain('upstreams');
    expect(rejection({ upstreams: minimalDoc().upstreams, models: [] })).toContain('models');
  });

  it('reports several independent problems in one message, one per line', () => {
    const message = rejection({
      ...minimalDoc(),
      server: { extproc_address: 'nope', log_level: 'loud' },
    });
    const lines = message.split('\n').filter((line) => line.startsWith('  - '));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    expect(message).toContain('server.extproc_address');
    expect(message).toContain('server.log_level');
  });
});

describe('configSchema used directly', () => {
  it('gives issue paths as arrays', () => {
    const doc = minimalDoc();
    doc.models = [{ name: 'x', upstream: 'nowhere', upstream_model: 'y' }];
    const result = configSchema.safeParse(doc);
    expect(result.success).toBe(false);
    expect(result.error?.issues.map((issue) => issue.path)).toContainEqual(['models', 0, 'upstream']);
  });
});

describe('loadConfigFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-config-test-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads and validates a file, using its path as the origin in errors', () => {
    const good = join(dir, 'good.yaml');
    writeFileSync(good, minimalYaml);
    expect(loadConfigFile(good).models[0]?.name).toBe('gpt-4o');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, `${minimalYaml}surprise: true\n`);
    expect(() => loadConfigFile(bad)).toThrow(ConfigError);
    expect(() => loadConfigFile(bad)).toThrow(`invalid ${bad}:`);
  });

  it('turns a missing file into a ConfigError', () => {
    const missing = join(dir, 'missing.yaml');
    expect(() => loadConfigFile(missing)).toThrow(ConfigError);
    expect(() => loadConfigFile(missing)).toThrow(`cannot read configuration ${missing}`);
  });
});

describe('resolveCredentials', () => {
  const config = parseConfig({
    upstreams: [
      { name: 'open', base_url: 'http://a/v1', schema: 'openai', credential: { source: 'none' } },
      { name: 'defaulted', base_url: 'http://a/v1', schema: 'openai' },
      { name: 'from-env', base_url: 'https://b/v1', schema: 'openai', credential: { source: 'env', name: 'PROVIDER_KEY' } },
      { name: 'from-file', base_url: 'https://c/v1', schema: 'openai', credential: { source: 'file', path: '/run/secrets/key' } },
    ],
    models: [{ name: 'm', upstream: 'open', upstream_model: 'm' }],
  });

  it('resolves every upstream: none → undefined, env and file trimmed', () => {
    const reads: string[] = [];
    const resolved = resolveCredentials(config, { PROVIDER_KEY: '  sk-env\n' }, (path) => {
      reads.push(path);
      return 'sk-file\n';
    });
    expect([...resolved.keys()]).toEqual(['open', 'defaulted', 'from-env', 'from-file']);
    expect(resolved.get('open')).toBeUndefined();
    expect(resolved.get('defaulted')).toBeUndefined();
    expect(resolved.get('from-env')).toBe('sk-env');
    expect(resolved.get('from-file')).toBe('sk-file');
    expect(reads).toEqual(['/run/secrets/key']);
  });

  it('throws a ConfigError naming the variable when the env source is missing or blank', () => {
    for (const env of [{}, { PROVIDER_KEY: '' }, { PROVIDER_KEY: '   ' }]) {
      expect(() => resolveCredentials(config, env, () => 'x')).toThrow(ConfigError);
      expect(() => resolveCredentials(config, env, () => 'x')).toThrow('upstream "from-env": environment variable PROVIDER_KEY is not set');
    }
  });

  it('throws a ConfigError when the file cannot be read or is empty', () => {
    const unreadable = () => {
      throw new Error('ENOENT: no such file');
    };
    expect(() => resolveCredentials(config, { PROVIDER_KEY: 'k' }, unreadable)).toThrow(ConfigError);
    expect(() => resolveCredentials(config, { PROVIDER_KEY: 'k' }, unreadable)).toThrow(
      'upstream "from-file": cannot read credential file /run/secrets/key: ENOENT: no such file',
    );
    expect(() => resolveCredentials(config, { PROVIDER_KEY: 'k' }, () => '\n')).toThrow('credential file /run/secrets/key is empty');
  });

  it('never reads a file when no upstream uses a file source', () => {
    const noFiles = parseConfig(minimalDoc());
    const resolved = resolveCredentials(noFiles, {}, () => {
      throw new Error('must not be called');
    });
    expect(resolved.get('mock')).toBeUndefined();
  });
});
