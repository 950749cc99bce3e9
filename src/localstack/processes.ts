import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';

/**
 * Node flags for the long-running `serve` process. Under load V8 grows the young generation to tens of MB per
 * semi-space and keeps it committed (RSS 270 MB at 2,600 RPS); 4 MB semi-spaces held RSS near 180 MB with
 * slightly higher throughput in `make bench`. Used by the Makefile, the benchmark and the deploy manifests.
 */
export const SERVE_NODE_FLAGS = ['--max-semi-space-size=4'];

/** Finds a tool on PATH (where `make setup` puts the pinned ones) or fails saying how to get it. */
export function findTool(name: string, envOverride?: string): string {
  const override = envOverride ? process.env[envOverride] : undefined;
  if (override) return override;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  throw new Error(
    `${name} not found on PATH. Run \`make setup\` (it installs the pinned ${name} into .tools/bin), ` +
      `then run through make, or add .tools/bin to PATH.`,
  );
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export interface EnvoyProcess {
  readonly process: ChildProcess;
  readonly adminUrl: string;
  /** Envoy's stderr so far (its own log), for test failure messages. */
  output(): string;
  stop(): Promise<void>;
}

export interface EnvoyLaunch {
  yaml: string;
  /** Where the rendered bootstrap is written. */
  workDir: string;
  adminAddress: string;
  logLevel?: string;
  concurrency?: number;
  inheritOutput?: boolean;
}

export async function startEnvoy(launch: EnvoyLaunch): Promise<EnvoyProcess> {
  const envoy = findTool('envoy', 'PORTCULLIS_ENVOY');
  mkdirSync(launch.workDir, { recursive: true });
  const configPath = join(launch.workDir, 'envoy.yaml');
  writeFileSync(configPath, launch.yaml);
  const child = spawn(
    envoy,
    [
      '-c', configPath,
      '--log-level', launch.logLevel ?? 'warn',
      '--concurrency', String(launch.concurrency ?? 2),
      // Several Envoys (tests, benchmarks, `make up`) may share a machine: no shared-memory hot restart.
      '--disable-hot-restart',
      // Access log lines within a second (Envoy's default waits up to 10 s) for people watching `make up`.
      '--file-flush-interval-msec', '500',
    ],
    { stdio: ['ignore', launch.inheritOutput ? 'inherit' : 'pipe', launch.inheritOutput ? 'inherit' : 'pipe'] },
  );
  let output = '';
  const keep = (data: Buffer) => {
    output = (output + data.toString('utf8')).slice(-64 * 1024);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const adminUrl = `http://${launch.adminAddress}`;
  let exitCode: number | null | undefined;
  void exited.then((code) => {
    exitCode = code;
  });
  await waitFor(
    'Envoy to be ready',
    async () => {
      if (exitCode !== undefined) throw new Error(`envoy exited with ${exitCode}:\n${output}`);
      const response = await fetch(`${adminUrl}/ready`);
      return response.status === 200;
    },
    20_000,
  ).catch((error: unknown) => {
    child.kill('SIGKILL');
    throw new Error(`${(error as Error).message}\n${output}`);
  });
  return {
    process: child,
    adminUrl,
    output: () => output,
    async stop() {
      if (exitCode !== undefined) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** `envoy --mode validate`: Envoy's own parser and validators, no listener opened. */
export async function validateEnvoyConfig(yaml: string, workDir: string): Promise<{ ok: boolean; output: string }> {
  const envoy = findTool('envoy', 'PORTCULLIS_ENVOY');
  mkdirSync(workDir, { recursive: true });
  const configPath = join(workDir, 'envoy-validate.yaml');
  writeFileSync(configPath, yaml);
  return new Promise((resolve) => {
    const child = spawn(envoy, ['--mode', 'validate', '-c', configPath, '--log-level', 'error', '--disable-hot-restart']);
    let output = '';
    child.stdout.on('data', (data: Buffer) => (output += data.toString('utf8')));
    child.stderr.on('data', (data: Buffer) => (output += data.toString('utf8')));
    child.once('exit', (code) => resolve({ ok: code === 0, output }));
  });
}
