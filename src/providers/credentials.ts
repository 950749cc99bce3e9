import { readFileSync } from 'node:fs';
import type { CredentialSource, GatewayConfig } from '../config/schema.ts';
import { ConfigError } from '../config/load.ts';

export type Environment = Readonly<Record<string, string | undefined>>;

/**
 * Resolves each upstream's credential once at start-up, so a missing secret stops the gateway with a clear
 * message instead of failing requests one by one. Values never leave this map except into upstream headers.
 */
export function resolveCredentials(
  config: GatewayConfig,
  env: Environment = process.env,
  readFile: (path: string) => string = (path) => readFileSync(path, 'utf8'),
): Map<string, string | undefined> {
  const resolved = new Map<string, string | undefined>();
  for (const upstream of config.upstreams) {
    resolved.set(upstream.name, resolveOne(upstream.name, upstream.credential, env, readFile));
  }
  return resolved;
}

function resolveOne(
  upstream: string,
  source: CredentialSource,
  env: Environment,
  readFile: (path: string) => string,
): string | undefined {
  switch (source.source) {
    case 'none':
      return undefined;
    case 'env': {
      const value = env[source.name]?.trim();
      if (!value) throw new ConfigError(`upstream "${upstream}": environment variable ${source.name} is not set`);
      return value;
    }
    case 'file': {
      let value: string;
      try {
        value = readFile(source.path).trim();
      } catch (error) {
        throw new ConfigError(`upstream "${upstream}": cannot read credential file ${source.path}: ${(error as Error).message}`);
      }
      if (!value) throw new ConfigError(`upstream "${upstream}": credential file ${source.path} is empty`);
      return value;
    }
  }
}
