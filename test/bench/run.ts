/*
 * `make bench`: the latency, throughput, CPU and memory Portcullis adds, measured in one run against the same
 * Envoy and the same mock upstream. Envoy gets two listeners: one straight to the mock (the baseline) and one
 * through ext_proc. Load comes from vegeta on loopback; every phase is bounded in time. Not a test: it prints
 * tables, and the targets are compared, not asserted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.ts';
import { renderEnvoyBootstrap, upstreamClusterName } from '../../src/envoyconfig/render.ts';
import { hashKey } from '../../src/identity/virtual-keys.ts';
import { findTool, freePort, SERVE_NODE_FLAGS, startEnvoy, waitFor } from '../../src/localstack/processes.ts';

const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const rates = (process.env.BENCH_RATES ?? '100,300,1000').split(',').map(Number);
const soakRequests = Number(process.env.BENCH_SOAK_REQUESTS ?? 100_000);
const soakMaxSeconds = Number(process.env.BENCH_SOAK_MAX_SECONDS ?? 120);
const KEY = 'pc-bench-key';

interface VegetaReport {
  latencies: { '50th': number; '99th': number; mean: number; max: number };
  requests: number;
  throughput: number;
  success: number;
  status_codes: Record<string, number>;
}

function childProcess(command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  return child;
}

function cpuSeconds(pid: number): number {
  // utime and stime, fields 14 and 15 of /proc/<pid>/stat, in clock ticks (100 per second on Linux).
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(match?.[1] ?? 0) / 1024;
}

function attack(vegeta: string, targetFile: string, rate: number | 'max', durationSeconds: number): VegetaReport {
  const rateArgs = rate === 'max' ? ['-rate=0', '-max-workers=32'] : [`-rate=${rate}/s`, '-workers=16'];
  const attackRun = spawnSync(
    vegeta,
    ['attack', `-targets=${targetFile}`, '-format=json', ...rateArgs, `-duration=${durationSeconds}s`, '-timeout=10s', '-keepalive=true'],
    { maxBuffer: 1024 * 1024 * 1024, timeout: (durationSeconds + 30) * 1000 },
  );
  if (attackRun.status !== 0) throw new Error(`vegeta attack failed: ${attackRun.stderr.toString()}`);
  const report = spawnSync(vegeta, ['report', '-type=json'], { input: attackRun.stdout, maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(report.stdout.toString()) as VegetaReport;
}

const ms = (ns: number) => ns / 1e6;
const fmt = (value: number, digits = 2) => value.toFixed(digits);

function table(title: string, header: string[], rows: string[][]): void {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column] ?? 0)).join(' | ')} |`;
  console.log(`\n${title}\n${line(header)}\n|${widths.map((width) => '-'.repeat(width + 2)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}

async function main(): Promise<void> {
  const vegeta = findTool('vegeta');
  const workDir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  const mockPort = await freePort();
  const listenerPort = await freePort();
  const directPort = await freePort();
  const envoyAdminPort = await freePort();
  const extprocPort = await freePort();
  const adminPort = await freePort();
  const config = parseConfig({
    server: {
      extproc_address: `127.0.0.1:${extprocPort}`,
      admin_address: `127.0.0.1:${adminPort}`,
      access_log: join(workDir, 'access.jsonl'),
      log_level: 'warn',
    },
    envoy: { listener_address: `127.0.0.1:${listenerPort}`, admin_address: `127.0.0.1:${envoyAdminPort}`, access_log: '/dev/null' },
    upstreams: [{ name: 'mock', base_url: `http://127.0.0.1:${mockPort}/v1`, schema: 'openai' }],
    models: [{ name: 'gpt-4o-mini', upstream: 'mock', upstream_model: 'mock-gpt-4o-mini' }],
    keys: [{ id: 'bench', hash: hashKey(KEY) }],
  });
  const configFile = join(workDir, 'portcullis.yaml');
  writeFileSync(configFile, stringify(config));

  // The baseline listener: same Envoy, same cluster, no ext_proc.
  const bootstrap = renderEnvoyBootstrap(config) as { static_resources: { listeners: unknown[] } };
  bootstrap.static_resources.listeners.push({
    name: 'direct',
    address: { socket_address: { address: '127.0.0.1', port_value: directPort } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'direct',
              route_config: {
                virtual_hosts: [
                  { name: 'direct', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: upstreamClusterName('mock'), timeout: '30s' } }] },
                ],
              },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } }],
            },
          },
        ],
      },
    ],
  });

  // The production artifact (`make build`), as a deployment runs it.
  const cli = 'dist/portcullis.mjs';
  const mock = childProcess(process.execPath, [cli, 'mock-llm', '--port', String(mockPort)]);
  const portcullis = childProcess(process.execPath, [...SERVE_NODE_FLAGS, cli, 'serve', '--config', configFile]);
  const children = [mock, portcullis];
  let envoy: Awaited<ReturnType<typeof startEnvoy>> | undefined;
  try {
    await waitFor('mock-llm', async () => (await fetch(`http://127.0.0.1:${mockPort}/v1/models`)).ok, 15_000);
    await waitFor('portcullis', async () => (await fetch(`http://127.0.0.1:${adminPort}/readyz`)).ok, 15_000);
    envoy = await startEnvoy({ yaml: stringify(bootstrap), workDir, adminAddress: config.envoy.admin_address, concurrency: 1 });

    // A 1 KB prompt, as the issue's workload asks.
    const prompt = 'The quick brown fox jumps over the lazy dog. '.repeat(23).slice(0, 1024);
    const target = (port: number, model: string, auth: boolean) => {
      const body = Buffer.from(JSON.stringify({ model, messages: [{ role: 'user', content: prompt }] })).toString('base64');
      const header: Record<string, string[]> = { 'Content-Type': ['application/json'] };
      if (auth) header.Authorization = [`Bearer ${KEY}`];
      const file = join(workDir, `target-${port}.json`);
      writeFileSync(file, `${JSON.stringify({ method: 'POST', url: `http://127.0.0.1:${port}/v1/chat/completions`, body, header })}\n`);
      return file;
    };
    const direct = target(directPort, 'mock-gpt-4o-mini', false);
    const gated = target(listenerPort, 'gpt-4o-mini', true);

    const check = await fetch(`http://127.0.0.1:${listenerPort}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'warm up' }] }),
    });
    if (!check.ok) throw new Error(`gateway check failed: ${check.status} ${await check.text()}`);
    // Warm both paths (JIT tiers, connection pools) before anything is measured.
    attack(vegeta, direct, 1000, 3);
    attack(vegeta, gated, 1000, 3);

    const pid = portcullis.pid ?? 0;
    const rssStart = rssMb(pid);
    const latencyRows: string[][] = [];
    const cpuRows: string[][] = [];
    for (const rate of [...rates, 'max' as const]) {
      const baseline = attack(vegeta, direct, rate, seconds);
      const cpuBefore = cpuSeconds(pid);
      const withGateway = attack(vegeta, gated, rate, seconds);
      const cpuUsed = cpuSeconds(pid) - cpuBefore;
      const label = rate === 'max' ? 'max' : `${rate} RPS`;
      latencyRows.push([
        label,
        fmt(ms(baseline.latencies['50th'])),
        fmt(ms(withGateway.latencies['50th'])),
        fmt(ms(withGateway.latencies['50th'] - baseline.latencies['50th'])),
        fmt(ms(baseline.latencies['99th'])),
        fmt(ms(withGateway.latencies['99th'])),
        fmt(ms(withGateway.latencies['99th'] - baseline.latencies['99th'])),
        fmt(baseline.throughput, 0),
        fmt(withGateway.throughput, 0),
        fmt(withGateway.throughput / baseline.throughput),
        `${fmt(baseline.success * 100, 1)}% / ${fmt(withGateway.success * 100, 1)}%`,
      ]);
      cpuRows.push([label, String(withGateway.requests), fmt((cpuUsed / withGateway.requests) * 1e6, 0), fmt(rssMb(pid), 1)]);
    }
    table(
      `Latency (ms) and throughput, 1 KB non-streaming prompts, ${seconds}s per cell; baseline = Envoy straight to the mock`,
      ['load', 'p50 base', 'p50 gw', 'p50 added', 'p99 base', 'p99 gw', 'p99 added', 'RPS base', 'RPS gw', 'RPS ratio', 'success base/gw'],
      latencyRows,
    );
    table('Portcullis process cost', ['load', 'requests', 'CPU µs/request', 'RSS MB after'], cpuRows);

    // Soak: at least `soakRequests` through the gateway, RSS sampled along the way.
    const samples: Array<[number, number]> = [[0, rssMb(pid)]];
    let sent = 0;
    const soakStarted = Date.now();
    while (sent < soakRequests && Date.now() - soakStarted < soakMaxSeconds * 1000) {
      const report = attack(vegeta, gated, 'max', Math.min(10, soakMaxSeconds));
      sent += report.requests;
      samples.push([sent, rssMb(pid)]);
    }
    table(
      `RSS of the Portcullis process over a ${sent}-request soak (start of run: ${fmt(rssStart, 1)} MB)`,
      ['requests', 'RSS MB', 'vs first sample'],
      samples.map(([count, rss]) => [String(count), fmt(rss, 1), fmt(rss / (samples[0]?.[1] ?? rss))]),
    );
    const peak = Math.max(...samples.map(([, rss]) => rss));
    const firstHalfPeak = Math.max(...samples.slice(0, Math.ceil(samples.length / 2)).map(([, rss]) => rss));
    const at300 = latencyRows.find((row) => row[0] === '300 RPS');
    console.log(
      `\nTargets: added p50 <= 1 ms at 300 RPS: ${at300?.[3]} ms; added p99 <= 5 ms at 300 RPS: ${at300?.[6]} ms; ` +
        `RSS <= 200 MB: peak ${fmt(peak, 1)} MB; flat after 100k: last ${fmt(samples.at(-1)?.[1] ?? 0, 1)} MB vs first-half peak ${fmt(firstHalfPeak, 1)} MB.`,
    );
  } finally {
    await envoy?.stop();
    for (const child of children) child.kill('SIGTERM');
    rmSync(workDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
