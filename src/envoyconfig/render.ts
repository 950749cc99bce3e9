import { stringify } from 'yaml';
import type { GatewayConfig, UpstreamConfig } from '../config/schema.ts';
import { UPSTREAM_HEADER } from '../endpoints/model-call.ts';
import { ANSWERED_BY_GATEWAY, METADATA_NAMESPACE } from '../extproc/messages.ts';

/*
 * Envoy's bootstrap, rendered from the same configuration the ext_proc server loads, so clusters, routes and
 * ext_proc settings cannot drift from what Portcullis decides. `portcullis envoy-config` prints it;
 * `envoy --mode validate` checks it in the test suite.
 */

type Yaml = Record<string, unknown>;

const EXTPROC_CLUSTER = 'portcullis_extproc';
const BUFFER_SLACK_BYTES = 64 * 1024;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(3)}s`;
}

export function upstreamClusterName(upstream: string): string {
  return `upstream_${upstream}`;
}

function isIpLiteral(host: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.includes(':');
}

function socketAddress(host: string, port: number): Yaml {
  return { socket_address: { address: host, port_value: port } };
}

function parseAddress(address: string): Yaml {
  if (address.startsWith('unix:')) return { pipe: { path: address.slice('unix:'.length) } };
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address);
  if (!match?.[1] || !match[2]) throw new Error(`cannot parse address "${address}"`);
  return socketAddress(match[1], Number(match[2]));
}

function addressIsDns(address: string): boolean {
  if (address.startsWith('unix:')) return false;
  const host = /^\[?([^\]]+?)\]?:\d+$/.exec(address)?.[1] ?? '';
  return !isIpLiteral(host);
}

function cluster(name: string, address: Yaml, dns: boolean, extra: Yaml): Yaml {
  return {
    name,
    type: dns ? 'STRICT_DNS' : 'STATIC',
    ...(dns ? { dns_lookup_family: 'V4_PREFERRED' } : {}),
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address } }] }] },
    ...extra,
  };
}

function extProcCluster(config: GatewayConfig): Yaml {
  const address = config.server.extproc_address;
  return cluster(EXTPROC_CLUSTER, parseAddress(address), addressIsDns(address), {
    connect_timeout: '1s',
    // Buffered bodies travel to Portcullis in one gRPC message.
    per_connection_buffer_limit_bytes:
      Math.max(config.limits.max_request_body_bytes, config.limits.max_response_body_bytes) + 1024 * 1024,
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: {
          http2_protocol_options: { connection_keepalive: { interval: '30s', timeout: '5s' } },
        },
      },
    },
    health_checks: [
      {
        timeout: '1s',
        interval: '5s',
        unhealthy_threshold: 2,
        healthy_threshold: 1,
        grpc_health_check: { service_name: 'envoy.service.ext_proc.v3.ExternalProcessor' },
      },
    ],
    // A just-restarted Portcullis must get traffic again quickly: don't hold Envoy back on health checks alone.
    common_lb_config: { healthy_panic_threshold: { value: 100 } },
  });
}

function providerCluster(upstream: UpstreamConfig, config: GatewayConfig): Yaml {
  const url = new URL(upstream.base_url);
  const tls = url.protocol === 'https:';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port ? Number(url.port) : tls ? 443 : 80;
  return cluster(upstreamClusterName(upstream.name), socketAddress(host, port), !isIpLiteral(host), {
    connect_timeout: '5s',
    per_connection_buffer_limit_bytes: config.limits.max_response_body_bytes + BUFFER_SLACK_BYTES,
    ...(tls
      ? {
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
              sni: host,
              common_tls_context: {
                validation_context: {
                  trusted_ca: { filename: config.envoy.upstream_ca_bundle },
                  match_typed_subject_alt_names: [
                    { san_type: 'DNS', matcher: { exact: host } },
                  ],
                },
              },
            },
          },
        }
      : {}),
    outlier_detection: { consecutive_5xx: 5, interval: '10s', base_ejection_time: '30s', max_ejection_percent: 100 },
  });
}

function routes(config: GatewayConfig): Yaml[] {
  const upstreamRoutes = config.upstreams.map((upstream) => ({
    name: `upstream_${upstream.name}`,
    match: { prefix: '/', headers: [{ name: UPSTREAM_HEADER, string_match: { exact: upstream.name } }] },
    route: {
      cluster: upstreamClusterName(upstream.name),
      timeout: seconds(upstream.timeout_ms),
      // Streams can be silent while a model thinks: the per-route idle timeout follows the upstream timeout.
      idle_timeout: seconds(upstream.timeout_ms),
      auto_host_rewrite: true,
      retry_policy: { retry_on: 'connect-failure,refused-stream,reset-before-request', num_retries: 1 },
    },
  }));
  // Reached only when no routing decision was made (Portcullis unreachable with failure_mode_allow, or a bug):
  // never forward such a request anywhere.
  const noDecision = {
    name: 'no_routing_decision',
    match: { prefix: '/' },
    direct_response: {
      status: 503,
      body: {
        inline_string: JSON.stringify({
          error: {
            message: 'The gateway could not choose an upstream for this request.',
            type: 'server_error',
            param: null,
            code: 'no_routing_decision',
          },
        }),
      },
    },
    response_headers_to_add: [{ header: { key: 'content-type', value: 'application/json' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
  };
  return [...upstreamRoutes, noDecision];
}

function extProcFilter(config: GatewayConfig): Yaml {
  return {
    name: 'envoy.filters.http.ext_proc',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor',
      grpc_service: { envoy_grpc: { cluster_name: EXTPROC_CLUSTER } },
      failure_mode_allow: config.envoy.failure_mode_allow,
      message_timeout: seconds(config.envoy.message_timeout_ms),
      max_message_timeout: seconds(config.envoy.max_message_timeout_ms),
      allow_mode_override: true,
      processing_mode: {
        request_header_mode: 'SEND',
        request_body_mode: 'BUFFERED',
        request_trailer_mode: 'SKIP',
        response_header_mode: 'SEND',
        // Switched to STREAMED per response (mode_override) when the upstream answers text/event-stream.
        response_body_mode: 'BUFFERED',
        response_trailer_mode: 'SKIP',
      },
      metadata_options: { receiving_namespaces: { untyped: [METADATA_NAMESPACE] } },
      stat_prefix: 'portcullis',
    },
  };
}

/**
 * Errors Envoy generates itself (Portcullis unreachable, body over the buffer limit, timeouts) are reshaped
 * into OpenAI's envelope so SDKs raise their usual typed errors. Portcullis' own answers carry a metadata marker
 * and are left alone.
 */
function localReplyConfig(): Yaml {
  const notAnsweredByGateway = {
    metadata_filter: {
      matcher: { filter: METADATA_NAMESPACE, path: [{ key: ANSWERED_BY_GATEWAY }], value: { bool_match: false } },
      match_if_key_not_found: true,
    },
  };
  const statusIs = (op: 'EQ' | 'GE', value: number) => ({
    status_code_filter: { comparison: { op, value: { default_value: value, runtime_key: `portcullis.local_reply.${op}_${value}` } } },
  });
  const envelope = (message: string, type: string, code: string) => ({
    body_format_override: {
      json_format: { error: { message, type, param: null, code } },
      content_type: 'application/json',
    },
  });
  const mapper = (status: number, message: string, type: string, code: string) => ({
    filter: { and_filter: { filters: [statusIs('EQ', status), notAnsweredByGateway] } },
    ...envelope(message, type, code),
  });
  return {
    mappers: [
      mapper(500, 'The gateway could not evaluate this request (its control service is unavailable); it was not sent to any provider.', 'server_error', 'gateway_unavailable'),
      mapper(413, 'Request body exceeds the gateway limit.', 'invalid_request_error', 'request_too_large'),
      mapper(503, 'The upstream provider could not be reached.', 'server_error', 'upstream_unavailable'),
      mapper(504, 'The request timed out at the gateway.', 'server_error', 'gateway_timeout'),
      {
        filter: { and_filter: { filters: [statusIs('GE', 400), notAnsweredByGateway] } },
        ...envelope('%LOCAL_REPLY_BODY%', 'server_error', 'gateway_error'),
      },
    ],
  };
}

function accessLog(config: GatewayConfig): Yaml[] {
  const metadata = (key: string) => `%DYNAMIC_METADATA(${METADATA_NAMESPACE}:${key})%`;
  return [
    {
      name: 'envoy.access_loggers.file',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
        path: config.envoy.access_log,
        log_format: {
          json_format: {
            time: '%START_TIME%',
            request_id: '%REQ(X-REQUEST-ID)%',
            method: '%REQ(:METHOD)%',
            path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
            status: '%RESPONSE_CODE%',
            details: '%RESPONSE_CODE_DETAILS%',
            flags: '%RESPONSE_FLAGS%',
            duration_ms: '%DURATION%',
            upstream_host: '%UPSTREAM_HOST%',
            bytes_received: '%BYTES_RECEIVED%',
            bytes_sent: '%BYTES_SENT%',
            key_id: metadata('key_id'),
            model: metadata('model'),
            upstream: metadata('upstream'),
          },
        },
      },
    },
  ];
}

export function renderEnvoyBootstrap(config: GatewayConfig): Yaml {
  return {
    node: { id: 'portcullis', cluster: 'portcullis' },
    admin: { address: parseAddress(config.envoy.admin_address) },
    // A bound on open client connections, so a flood degrades into refused connections, not exhausted memory.
    overload_manager: {
      resource_monitors: [
        {
          name: 'envoy.resource_monitors.global_downstream_max_connections',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig',
            max_active_downstream_connections: config.envoy.max_downstream_connections,
          },
        },
      ],
    },
    static_resources: {
      listeners: [
        {
          name: 'portcullis_listener',
          address: parseAddress(config.envoy.listener_address),
          // Above the gateway's own limit, so oversized bodies with a content-length get Portcullis' 413.
          per_connection_buffer_limit_bytes: config.limits.max_request_body_bytes + BUFFER_SLACK_BYTES,
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type':
                      'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'portcullis',
                    codec_type: 'AUTO',
                    generate_request_id: true,
                    always_set_request_id_in_response: true,
                    // Streams may last minutes; idle and per-route timeouts bound them instead.
                    request_timeout: '0s',
                    stream_idle_timeout: '300s',
                    access_log: accessLog(config),
                    local_reply_config: localReplyConfig(),
                    route_config: {
                      name: 'portcullis_routes',
                      // The routing header is Portcullis' alone: cleaned from external requests before any filter.
                      internal_only_headers: [UPSTREAM_HEADER],
                      virtual_hosts: [
                        {
                          name: 'portcullis',
                          domains: ['*'],
                          routes: routes(config),
                          // Providers need not learn the gateway's internal routing names.
                          request_headers_to_remove: [UPSTREAM_HEADER],
                        },
                      ],
                    },
                    http_filters: [
                      extProcFilter(config),
                      {
                        name: 'envoy.filters.http.router',
                        typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
                      },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      clusters: [extProcCluster(config), ...config.upstreams.map((upstream) => providerCluster(upstream, config))],
    },
  };
}

export function renderEnvoyYaml(config: GatewayConfig): string {
  return `# Rendered by \`portcullis envoy-config\` from the gateway configuration; do not edit by hand.\n${stringify(
    renderEnvoyBootstrap(config),
    { lineWidth: 0 },
  )}`;
}
