import type { TokenUsage } from '../api/openai.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { Caller, KeyStore } from '../identity/virtual-keys.ts';
import type { Operation } from '../providers/provider.ts';
import type { ModelCatalog, RouteTarget } from '../routing/model-catalog.ts';
import type { Headers } from '../extproc/messages.ts';

/** What every exchange can consult; built once per configuration. */
export interface GatewayContext {
  readonly config: GatewayConfig;
  readonly keys: KeyStore;
  readonly catalog: ModelCatalog;
  readonly credentials: ReadonlyMap<string, string | undefined>;
}

/** The facts one HTTP exchange accumulates, read by the endpoint decisions and the access record. */
export interface ExchangeState {
  requestId: string;
  method: string;
  path: string;
  caller: Caller | undefined;
  operation: Operation | 'models' | undefined;
  modelAsked: string | undefined;
  target: RouteTarget | undefined;
  stream: boolean;
  /** The caller asked for the usage chunk itself (so the gateway must not strip it). */
  clientAskedUsage: boolean;
  response: {
    status: number | undefined;
    headers: Headers | undefined;
    streaming: boolean;
    usage: TokenUsage | undefined;
    servedModel: string | undefined;
    /** Short machine-readable reason when the gateway or upstream failed the exchange. */
    errorCode: string | undefined;
  };
}

export function newExchangeState(): ExchangeState {
  return {
    requestId: '',
    method: '',
    path: '',
    caller: undefined,
    operation: undefined,
    modelAsked: undefined,
    target: undefined,
    stream: false,
    clientAskedUsage: false,
    response: {
      status: undefined,
      headers: undefined,
      streaming: false,
      usage: undefined,
      servedModel: undefined,
      errorCode: undefined,
    },
  };
}
