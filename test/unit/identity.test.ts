import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { authenticate, generateKey, hashKey, InMemoryKeyStore } from '../../src/identity/virtual-keys.ts';
import { ModelCatalog } from '../../src/routing/model-catalog.ts';

const store = new InMemoryKeyStore([
  { id: 'team-a', hash: hashKey('pc-a'), models: ['*'], disabled: false },
  { id: 'team-b', hash: hashKey('pc-b'), models: ['small'], disabled: false },
  { id: 'retired', hash: hashKey('pc-old'), models: ['*'], disabled: true },
]);

describe('virtual keys', () => {
  it('hashes with SHA-256 and generates distinct prefixed keys', () => {
    expect(hashKey('pc-a')).toMatch(/^sha256:[0-9a-f]{64}$/);
    const first = generateKey();
    expect(first).toMatch(/^pc-[A-Za-z0-9_-]{43}$/);
    expect(generateKey()).not.toBe(first);
  });

  it('authenticates Bearer keys and nothing else', () => {
    expect(authenticate(undefined, store)).toEqual({ ok: false, reason: 'missing' });
    expect(authenticate('Basic cGM6YQ==', store)).toEqual({ ok: false, reason: 'missing' });
    expect(authenticate('Bearer pc-unknown', store)).toEqual({ ok: false, reason: 'invalid' });
    expect(authenticate('Bearer pc-old', store)).toEqual({ ok: false, reason: 'invalid' });
    const result = authenticate('bearer pc-a', store);
    expect(result.ok && result.caller.keyId).toBe('team-a');
  });
});

describe('model catalog', () => {
  const catalog = new ModelCatalog(
    parseConfig({
      upstreams: [{ name: 'p', base_url: 'https://provider.example/openai/v1/', schema: 'openai' }],
      models: [
        { name: 'small', upstream: 'p', upstream_model: 'small-2025' },
        { name: 'large', upstream: 'p', upstream_model: 'large-2025' },
      ],
    }),
  );
  const caller = (key: string) => {
    const result = authenticate(`Bearer ${key}`, store);
    if (!result.ok) throw new Error('test key rejected');
    return result.caller;
  };

  it('resolves allowed models with the upstream base path, and hides forbidden ones like unknown ones', () => {
    expect(catalog.resolve(caller('pc-a'), 'large')?.basePath).toBe('/openai/v1');
    expect(catalog.resolve(caller('pc-a'), 'large')?.model.upstream_model).toBe('large-2025');
    expect(catalog.resolve(caller('pc-b'), 'large')).toBeUndefined();
    expect(catalog.resolve(caller('pc-a'), 'missing')).toBeUndefined();
    expect(catalog.visibleTo(caller('pc-b')).map((model) => model.name)).toEqual(['small']);
  });
});
