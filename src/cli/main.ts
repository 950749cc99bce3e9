#!/usr/bin/env node
import { writeFileSync } from 'node:fs';
import { ConfigError, loadConfigFile } from '../config/load.ts';
import { renderEnvoyYaml } from '../envoyconfig/render.ts';
import { startGateway } from '../gateway/gateway.ts';
import { generateKey, hashKey } from '../identity/virtual-keys.ts';
import { runLocalStack } from '../localstack/up.ts';
import { runMockLlmCli } from '../mockllm/server.ts';

const DEFAULT_CONFIG = 'deploy/local/portcullis.yaml';

const usage = `portcullis — an LLM gateway that Envoy consults through ext_proc

Usage:
  portcullis serve        [--config FILE]            run the ext_proc server and the admin port
  portcullis envoy-config [--config FILE] [--out FILE] print the Envoy bootstrap rendered from the configuration
  portcullis up           [--config FILE]            run the local stack: mock provider, Portcullis, Envoy
  portcullis mock-llm     [--host H] [--port P] [--chunk-size N] [--chunk-delay-ms MS]
  portcullis new-key                                 print a new virtual key and the hash to put in the configuration
  portcullis hash-key     KEY                        print the hash of an existing key

--config defaults to $PORTCULLIS_CONFIG, then ${DEFAULT_CONFIG}.
`;

function option(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  if (index === -1) return undefined;
  const value = args[index + 1];
  if (value === undefined || value.startsWith('--')) throw new ConfigError(`${name} needs a value`);
  return value;
}

function configPath(args: string[]): string {
  return option(args, '--config') ?? process.env.PORTCULLIS_CONFIG ?? DEFAULT_CONFIG;
}

async function serve(args: string[]): Promise<void> {
  const config = loadConfigFile(configPath(args));
  const gateway = await startGateway(config);
  const stop = () => {
    gateway.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...args] = argv;
  switch (command) {
    case 'serve':
      return serve(args);
    case 'envoy-config': {
      const yaml = renderEnvoyYaml(loadConfigFile(configPath(args)));
      const out = option(args, '--out');
      if (out) writeFileSync(out, yaml);
      else process.stdout.write(yaml);
      return;
    }
    case 'up':
      return runLocalStack(configPath(args));
    case 'mock-llm':
      return runMockLlmCli(args);
    case 'new-key': {
      const key = generateKey();
      process.stdout.write(`key:  ${key}\nhash: ${hashKey(key)}\n`);
      return;
    }
    case 'hash-key': {
      const key = args[0];
      if (!key) throw new ConfigError('hash-key needs the key as its argument');
      process.stdout.write(`${hashKey(key)}\n`);
      return;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${usage}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`portcullis: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`portcullis: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
