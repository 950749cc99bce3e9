import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, waitFor } from '../../src/localstack/processes.ts';

const workDir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function run(args: string[]) {
  const child = spawn(process.execPath, ['src/cli/main.ts', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (data: Buffer) => (stdout += data.toString()));
  child.stderr.on('data', (data: Buffer) => (stderr += data.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

describe('the portcullis command', () => {
  it('serves, reports ready, and drains to exit 0 on SIGTERM', async () => {
    const adminPort = await freePort();
    const config = join(workDir, 'portcullis.yaml');
    writeFileSync(
      config,
      [
        'server:',
        `  extproc_address: 127.0.0.1:${await freePort()}`,
        `  admin_address: 127.0.0.1:${adminPort}`,
        '  drain_timeout_ms: 2000',
        'upstreams: [{ name: mock, base_url: "http://127.0.0.1:9/v1", schema: openai }]',
        'models: [{ name: m, upstream: mock, upstream_model: m }]',
      ].join('\n'),
    );
    const serve = run(['serve', '--config', config]);
    await waitFor('readiness', async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok, 15_000);
    serve.child.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    const logs = serve.output().stderr.trim().split('\n').map((line) => JSON.parse(line) as { msg: string });
    expect(logs.map((line) => line.msg)).toEqual(expect.arrayContaining(['ext_proc server listening', 'draining', 'stopped']));
  });

  it('refuses an invalid configuration with exit code 2 and the path of the problem', async () => {
    const config = join(workDir, 'broken.yaml');
    writeFileSync(config, 'upstreams: []\nmodels: [{ name: m, upstream: nowhere, upstream_model: m }]\n');
    const serve = run(['serve', '--config', config]);
    expect(await serve.exited).toBe(2);
    expect(serve.output().stderr).toContain('models.0.upstream: unknown upstream "nowhere"');
  });

  it('prints a new key with its hash, and hashes a key the same way', async () => {
    const created = run(['new-key']);
    expect(await created.exited).toBe(0);
    const [, key, hash] = /key:\s+(\S+)\nhash: (\S+)/.exec(created.output().stdout) ?? [];
    const hashed = run(['hash-key', key ?? '']);
    expect(await hashed.exited).toBe(0);
    expect(hashed.output().stdout.trim()).toBe(hash);
  });
});
