import { createHash, randomBytes } from 'node:crypto';
import type { VirtualKeyConfig } from '../config/schema.ts';

export interface Caller {
  keyId: string;
  /** Model names this caller may use, or "all". */
  allowedModels: ReadonlySet<string> | 'all';
}

/** Where virtual keys live. The configuration file is the embedded default; a NATS KV store comes later. */
export interface KeyStore {
  findByHash(hash: string): Caller | undefined;
}

const KEY_PREFIX = 'pc-';

/**
 * Virtual keys are random 256-bit secrets, so a single SHA-256 is the right hash (as for GitHub or Stripe
 * tokens): slow password hashes protect guessable secrets and would cost milliseconds on every request.
 */
export function hashKey(key: string): string {
  return `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
}

export function generateKey(): string {
  return `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

export class InMemoryKeyStore implements KeyStore {
  private readonly byHash = new Map<string, Caller>();

  constructor(keys: readonly VirtualKeyConfig[]) {
    for (const key of keys) {
      if (key.disabled) continue;
      this.byHash.set(key.hash, {
        keyId: key.id,
        allowedModels: key.models.includes('*') ? 'all' : new Set(key.models),
      });
    }
  }

  findByHash(hash: string): Caller | undefined {
    return this.byHash.get(hash);
  }
}

export type Authentication = { ok: true; caller: Caller } | { ok: false; reason: 'missing' | 'invalid' };

/** Reads `Authorization: Bearer <key>` (the OpenAI SDK's form) and finds the caller it belongs to. */
export function authenticate(authorization: string | undefined, store: KeyStore): Authentication {
  if (!authorization) return { ok: false, reason: 'missing' };
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!match?.[1]) return { ok: false, reason: 'missing' };
  const caller = store.findByHash(hashKey(match[1]));
  return caller ? { ok: true, caller } : { ok: false, reason: 'invalid' };
}

export function mayUseModel(caller: Caller, model: string): boolean {
  return caller.allowedModels === 'all' || caller.allowedModels.has(model);
}
