import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import type { VirtualKeyConfig } from '../../src/config/schema.ts';
import {
  authenticate,
  generateKey,
  hashKey,
  InMemoryKeyStore,
  mayUseModel,
  type Caller,
  type KeyStore,
} from '../../src/identity/virtual-keys.ts';
import { ModelCatalog } from '../../src/routing/model-catalog.ts';

const keys: VirtualKeyConfig[] = [
  { id: 'everything', hash: hashKey('pc-all'), models: ['*'], disabled: false },
  { id: 'small-only', hash: hashKey('pc-small'), models: ['small'], disabled: false },
  { id: 'two-models', hash: hashKey('pc-two'), models: ['small', 'embed'], disabled: false },
  { id: 'retired', hash: hashKey('pc-retired'), models: ['*'], disabled: true },
];
const store = new InMemoryKeyStore(keys);

function callerFor(key: string, keyStore: KeyStore = store): Caller {
  const result = authenticate(`Bearer ${key}`, keyStore);
  if (!result.ok) throw new Error(`test key ${key} rejected: ${result.reason}`);
  return result.caller;
}

describe('hashKey', () => {
  it('is sha256:<64 lowercase hex> of the UTF-8 key', () => {
    const hash = hashKey('pc-demo-local-only-not-a-secret');
    expect(hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(hash).toBe(`sha256:${createHash('sha256').update('pc-demo-local-only-not-a-secret').digest('hex')}`);
    // The bundled demo key's published hash.
    expect(hash).toBe('sha256:a5560b91573ef0b07ca645e56daf7ba77316975af283fa560f397cbe380bd4aa');
  });

  it('is deterministic and distinguishes different keys', () => {
    expect(hashKey('pc-a')).toBe(hashKey('pc-a'));
    expect(hashKey('pc-a')).not.toBe(hashKey('pc-b'));
    expect(hashKey('')).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });
});

describe('generateKey', () => {
  it('produces pc- followed by 256 bits of base64url', () => {
    const key = generateKey();
    expect(key.startsWith('pc-')).toBe(true);
    const secret = key.slice(3);
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(secret, 'base64url')).toHaveLength(32);
  });

  it('never repeats', () => {
    const generated = new Set(Array.from({ length: 200 }, () => generateKey()));
    expect(generated.size).toBe(200);
  });

  it('produces keys whose hash passes the configuration schema', () => {
    const key = generateKey();
    const config = parseConfig({
      upstreams: [{ name: 'u', base_url: 'http://a/v1', schema: 'openai' }],
      models: [{ name: 'm', upstream: 'u', upstream_model: 'm' }],
      keys: [{ id: 'new', hash: hashKey(key) }],
    });
    expect(authenticate(`Bearer ${key}`, new InMemoryKeyStore(config.keys))).toMatchObject({ ok: true, caller: { keyId: 'new' } });
  });
});

describe('authenticate', () => {
  it('reports a missing or empty Authorization header as missing', () => {
    expect(authenticate(undefined, store)).toEqual({ ok: false, reason: 'missing' });
    expect(authenticate('', store)).toEqual({ ok: false, reason: 'missing' });
  });

  it('reports a non-Bearer scheme or a Bearer without a token as missing', () => {
    expect(authenticate('Basic cGMtYWxsOg==', store)).toEqual({ ok: false, reason: 'missing' });
    expect(authenticate('pc-all', store)).toEqual({ ok: false, reason: 'missing' });
    expect(authenticate('Bearer', store)).toEqual({ ok: false, reason: 'missing' });
    expect(authenticate('Bearer ', store)).toEqual({ ok: false, reason: 'missing' });
    expect(authenticate('Bearer pc-all extra', store)).toEqual({ ok: false, reason: 'missing' });
    expect(authenticate('Bearerpc-all', store)).toEqual({ ok: false, reason: 'missing' });
  });

  it('reports an unknown key as invalid', () => {
    expect(authenticate('Bearer pc-unknown', store)).toEqual({ ok: false, reason: 'invalid' });
    // The hash is not itself a credential.
    expect(authenticate(`Bearer ${hashKey('pc-all')}`, store)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('rejects a disabled key exactly like an unknown one', () => {
    expect(authenticate('Bearer pc-retired', store)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('returns the caller for a valid key, case-insensitive scheme and surrounding whitespace tolerated', () => {
    for (const header of ['Bearer pc-all', 'bearer pc-all', 'BEARER   pc-all', 'Bearer pc-all  ']) {
      const result = authenticate(header, store);
      expect(result.ok, header).toBe(true);
      if (result.ok) {
        expect(result.caller.keyId).toBe('everything');
        expect(result.caller.allowedModels).toBe('all');
      }
    }
  });

  it('is case-sensitive in the key itself', () => {
    expect(authenticate('Bearer PC-ALL', store)).toEqual({ ok: false, reason: 'invalid' });
  });

  it('gives a restricted caller its allow-list', () => {
    const caller = callerFor('pc-two');
    expect(caller.keyId).toBe('two-models');
    expect(caller.allowedModels).toEqual(new Set(['small', 'embed']));
  });
});

describe('InMemoryKeyStore and mayUseModel', () => {
  it('finds callers by hash and omits disabled keys', () => {
    expect(store.findByHash(hashKey('pc-small'))?.keyId).toBe('small-only');
    expect(store.findByHash(hashKey('pc-retired'))).toBeUndefined();
    expect(store.findByHash('sha256:nothing')).toBeUndefined();
  });

  it('treats "*" anywhere in the list as every model', () => {
    const mixed = new InMemoryKeyStore([{ id: 'mixed', hash: hashKey('pc-mixed'), models: ['small', '*'], disabled: false }]);
    expect(mixed.findByHash(hashKey('pc-mixed'))?.allowedModels).toBe('all');
  });

  it('allows only the listed models to a restricted caller and every model to an unrestricted one', () => {
    const small = callerFor('pc-small');
    expect(mayUseModel(small, 'small')).toBe(true);
    expect(mayUseModel(small, 'large')).toBe(false);
    expect(mayUseModel(small, '*')).toBe(false);
    expect(mayUseModel(small, 'Small')).toBe(false);
    const all = callerFor('pc-all');
    expect(mayUseModel(all, 'large')).toBe(true);
    expect(mayUseModel(all, 'anything-at-all')).toBe(true);
  });
});

describe('ModelCatalog', () => {
  const config = parseConfig({
    upstreams: [
      { name: 'nested', base_url: 'https://provider.example/openai/v1/', schema: 'openai' },
      { name: 'rootonly', base_url: 'http://127.0.0.1:8081', schema: 'openai' },
      { name: 'slashes', base_url: 'http://127.0.0.1:8081/v1///', schema: 'openai' },
    ],
    models: [
      { name: 'small', upstream: 'nested', upstream_model: 'small-2025' },
      { name: 'large', upstream: 'nested', upstream_model: 'large-2025' },
      { name: 'embed', upstream: 'rootonly', upstream_model: 'embed-v3' },
      { name: 'other', upstream: 'slashes', upstream_model: 'other-1' },
    ],
  });
  const catalog = new ModelCatalog(config);

  it('resolves an allowed model to its model, upstream, provider and base path', () => {
    const target = catalog.resolve(callerFor('pc-all'), 'large');
    expect(target?.model).toEqual({ name: 'large', upstream: 'nested', upstream_model: 'large-2025' });
    expect(target?.upstream.name).toBe('nested');
    expect(target?.upstream.base_url).toBe('https://provider.example/openai/v1/');
    expect(target?.provider).toBeDefined();
    expect(target?.basePath).toBe('/openai/v1');
  });

  it('derives the base path from the base_url path without trailing slashes', () => {
    const all = callerFor('pc-all');
    expect(catalog.resolve(all, 'small')?.basePath).toBe('/openai/v1');
    expect(catalog.resolve(all, 'embed')?.basePath).toBe('');
    expect(catalog.resolve(all, 'other')?.basePath).toBe('/v1');
  });

  it('answers undefined for an unknown model and for a forbidden one alike', () => {
    const small = callerFor('pc-small');
    expect(catalog.resolve(small, 'small')?.model.name).toBe('small');
    expect(catalog.resolve(small, 'large')).toBeUndefined();
    expect(catalog.resolve(small, 'gpt-9')).toBeUndefined();
    expect(catalog.resolve(callerFor('pc-all'), 'gpt-9')).toBeUndefined();
    // Upstream model names are not caller-facing names.
    expect(catalog.resolve(callerFor('pc-all'), 'large-2025')).toBeUndefined();
  });

  it('lists only the models a caller may use, in configuration order', () => {
    expect(catalog.visibleTo(callerFor('pc-all')).map((model) => model.name)).toEqual(['small', 'large', 'embed', 'other']);
    expect(catalog.visibleTo(callerFor('pc-small')).map((model) => model.name)).toEqual(['small']);
    expect(catalog.visibleTo(callerFor('pc-two')).map((model) => model.name)).toEqual(['small', 'embed']);
    const nobody: Caller = { keyId: 'none', allowedModels: new Set(['not-configured']) };
    expect(catalog.visibleTo(nobody)).toEqual([]);
  });

  it('refuses a configuration whose model names an unknown upstream (bypassing schema validation)', () => {
    const broken = structuredClone(config);
    broken.models = [{ name: 'x', upstream: 'missing', upstream_model: 'x' }];
    expect(() => new ModelCatalog(broken)).toThrow('model x names unknown upstream missing');
  });
});
