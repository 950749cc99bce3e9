import { z } from 'zod';

// Addresses are `host:port` or `unix:/path`; Envoy and grpc-js both understand the unix form.
const hostPort = z
  .string()
  .regex(/^(unix:\/.+|[A-Za-z0-9.\-]+:\d{1,5}|\[[0-9a-fA-F:]+\]:\d{1,5})$/, 'expected host:port or unix:/path');

const upstreamName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lowercase letters, digits, - and _ (it becomes an Envoy cluster name)');

const credentialSource = z.discriminatedUnion('source', [
  z.object({ source: z.literal('none') }).strict(),
  z.object({ source: z.literal('env'), name: z.string().min(1) }).strict(),
  z.object({ source: z.literal('file'), path: z.string().min(1) }).strict(),
]);

export const providerSchemas = ['openai'] as const;

const upstreamSchema = z
  .object({
    name: upstreamName,
    base_url: z.url({ protocol: /^https?$/ }),
    schema: z.enum(providerSchemas),
    credential: credentialSource.default({ source: 'none' }),
    region: z.string().min(1).default('unspecified'),
    timeout_ms: z.number().int().positive().max(3_600_000).default(600_000),
  })
  .strict();

const modelSchema = z
  .object({
    name: z.string().min(1).max(256),
    upstream: upstreamName,
    upstream_model: z.string().min(1).max(256),
  })
  .strict();

const keyHash = z.string().regex(/^sha256:[0-9a-f]{64}$/, 'expected sha256:<64 hex> (see `portcullis hash-key`)');

const virtualKeySchema = z
  .object({
    id: z.string().min(1).max(128),
    hash: keyHash,
    // Model names this key may use; "*" means every configured model.
    models: z.array(z.string().min(1)).min(1).default(['*']),
    disabled: z.boolean().default(false),
  })
  .strict();

export const configSchema = z
  .object({
    server: z
      .object({
        extproc_address: hostPort.default('127.0.0.1:50051'),
        admin_address: hostPort.default('127.0.0.1:9090'),
        drain_timeout_ms: z.number().int().nonnegative().max(600_000).default(30_000),
        log_level: z.enum(['debug', 'info', 'warn', 'error']).default('info'),
        access_log: z.string().min(1).default('-'),
      })
      .strict()
      .prefault({}),
    envoy: z
      .object({
        listener_address: hostPort.default('127.0.0.1:8080'),
        admin_address: hostPort.default('127.0.0.1:9901'),
        message_timeout_ms: z.number().int().positive().max(60_000).default(5_000),
        max_message_timeout_ms: z.number().int().positive().max(600_000).default(30_000),
        // Fail closed unless an operator explicitly chooses availability over enforcement.
        failure_mode_allow: z.boolean().default(false),
        access_log: z.string().min(1).default('/dev/stdout'),
        max_downstream_connections: z.number().int().positive().default(50_000),
        // CA bundle Envoy verifies HTTPS providers against (Debian/Ubuntu path; the Envoy image has it).
        upstream_ca_bundle: z.string().min(1).default('/etc/ssl/certs/ca-certificates.crt'),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        max_request_body_bytes: z.number().int().positive().max(64 * 1024 * 1024).default(4 * 1024 * 1024),
        max_response_body_bytes: z.number().int().positive().max(256 * 1024 * 1024).default(16 * 1024 * 1024),
      })
      .strict()
      .prefault({}),
    upstreams: z.array(upstreamSchema).min(1),
    models: z.array(modelSchema).min(1),
    keys: z.array(virtualKeySchema).default([]),
  })
  .strict()
  .superRefine((config, ctx) => {
    const upstreamNames = new Set<string>();
    config.upstreams.forEach((upstream, index) => {
      if (upstreamNames.has(upstream.name)) {
        ctx.addIssue({ code: 'custom', path: ['upstreams', index, 'name'], message: `duplicate upstream "${upstream.name}"` });
      }
      upstreamNames.add(upstream.name);
    });
    const modelNames = new Set<string>();
    config.models.forEach((model, index) => {
      if (modelNames.has(model.name)) {
        ctx.addIssue({ code: 'custom', path: ['models', index, 'name'], message: `duplicate model "${model.name}"` });
      }
      modelNames.add(model.name);
      if (!upstreamNames.has(model.upstream)) {
        ctx.addIssue({ code: 'custom', path: ['models', index, 'upstream'], message: `unknown upstream "${model.upstream}"` });
      }
    });
    const keyIds = new Set<string>();
    const keyHashes = new Set<string>();
    config.keys.forEach((key, index) => {
      if (keyIds.has(key.id)) ctx.addIssue({ code: 'custom', path: ['keys', index, 'id'], message: `duplicate key id "${key.id}"` });
      if (keyHashes.has(key.hash)) ctx.addIssue({ code: 'custom', path: ['keys', index, 'hash'], message: 'duplicate key hash' });
      keyIds.add(key.id);
      keyHashes.add(key.hash);
      key.models.forEach((name, modelIndex) => {
        if (name !== '*' && !modelNames.has(name)) {
          ctx.addIssue({ code: 'custom', path: ['keys', index, 'models', modelIndex], message: `unknown model "${name}"` });
        }
      });
    });
    if (config.envoy.max_message_timeout_ms < config.envoy.message_timeout_ms) {
      ctx.addIssue({ code: 'custom', path: ['envoy', 'max_message_timeout_ms'], message: 'must be >= message_timeout_ms' });
    }
  });

export type GatewayConfig = z.infer<typeof configSchema>;
export type UpstreamConfig = GatewayConfig['upstreams'][number];
export type ModelConfig = GatewayConfig['models'][number];
export type VirtualKeyConfig = GatewayConfig['keys'][number];
export type CredentialSource = UpstreamConfig['credential'];
export type ProviderSchema = (typeof providerSchemas)[number];
