import type { AccessLog } from '../access/record.ts';
import { JsonLinesAccessLog } from '../access/record.ts';
import { startAdminServer, type AdminServer } from '../admin/server.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { GatewayContext } from '../endpoints/context.ts';
import { startExtProcServer, type ExtProcServer } from '../extproc/server.ts';
import { InMemoryKeyStore } from '../identity/virtual-keys.ts';
import { resolveCredentials, type Environment } from '../providers/credentials.ts';
import { ModelCatalog } from '../routing/model-catalog.ts';
import { createLogger, type Logger } from '../telemetry/logger.ts';
import { MetricsTelemetry } from '../telemetry/metrics.ts';
import { systemClock, type Clock } from '../telemetry/telemetry.ts';

export interface GatewayOptions {
  accessLog?: AccessLog;
  logger?: Logger;
  clock?: Clock;
  env?: Environment;
  /** Collect Node process metrics (off in tests that start several gateways in one process). */
  processMetrics?: boolean;
}

export interface RunningGateway {
  readonly extproc: ExtProcServer;
  readonly admin: AdminServer;
  readonly telemetry: MetricsTelemetry;
  /** Graceful stop: not ready, health NOT_SERVING, open exchanges finish (up to the drain timeout). */
  stop(): Promise<void>;
}

export function buildGatewayContext(config: GatewayConfig, env?: Environment): GatewayContext {
  return {
    config,
    keys: new InMemoryKeyStore(config.keys),
    catalog: new ModelCatalog(config),
    credentials: resolveCredentials(config, env),
  };
}

export async function startGateway(config: GatewayConfig, options: GatewayOptions = {}): Promise<RunningGateway> {
  const logger = options.logger ?? createLogger('portcullis', config.server.log_level);
  const accessLog = options.accessLog ?? new JsonLinesAccessLog(config.server.access_log);
  const context = buildGatewayContext(config, options.env);
  const telemetry = new MetricsTelemetry(accessLog, { defaultMetrics: options.processMetrics ?? true });
  const { limits } = config;
  let ready = true;
  const extproc = await startExtProcServer({
    address: config.server.extproc_address,
    gateway: () => context,
    telemetry,
    clock: options.clock ?? systemClock,
    logger,
    // A buffered body travels in one gRPC message; leave room for the envelope and headers.
    maxMessageBytes: Math.max(limits.max_request_body_bytes, limits.max_response_body_bytes) + 1024 * 1024,
  });
  const admin = await startAdminServer({
    address: config.server.admin_address,
    registry: telemetry.registry,
    isReady: () => ready,
    logger,
  });
  let stopping: Promise<void> | undefined;
  return {
    extproc,
    admin,
    telemetry,
    stop() {
      stopping ??= (async () => {
        ready = false;
        extproc.setServing(false);
        logger.info('draining', { open_exchanges: extproc.openExchanges });
        await extproc.shutdown(config.server.drain_timeout_ms);
        await admin.close();
        await accessLog.close();
        logger.info('stopped');
      })();
      return stopping;
    },
  };
}
