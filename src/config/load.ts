import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { configSchema, type GatewayConfig } from './schema.ts';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Validates an already-parsed document; every problem is reported with its path so operators can fix all at once. */
export function parseConfig(document: unknown, origin = 'configuration'): GatewayConfig {
  const result = configSchema.safeParse(document);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `  - ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  throw new ConfigError(`invalid ${origin}:\n${problems.join('\n')}`);
}

export function parseConfigText(text: string, origin = 'configuration'): GatewayConfig {
  let document: unknown;
  try {
    document = parseYaml(text, { prettyErrors: true });
  } catch (error) {
    throw new ConfigError(`${origin} is not valid YAML: ${(error as Error).message}`);
  }
  return parseConfig(document, origin);
}

export function loadConfigFile(path: string): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read configuration ${path}: ${(error as Error).message}`);
  }
  return parseConfigText(text, path);
}
