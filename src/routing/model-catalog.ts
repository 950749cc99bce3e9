import type { GatewayConfig, ModelConfig, UpstreamConfig } from '../config/schema.ts';
import { mayUseModel, type Caller } from '../identity/virtual-keys.ts';
import { providerFor } from '../providers/registry.ts';
import type { Provider } from '../providers/provider.ts';

export interface RouteTarget {
  model: ModelConfig;
  upstream: UpstreamConfig;
  provider: Provider;
  /** The upstream base URL's path ("/v1"), to which the provider's operation path is appended. */
  basePath: string;
}

/** The configured models, indexed once, and the routing decision over them. */
export class ModelCatalog {
  private readonly targets = new Map<string, RouteTarget>();

  constructor(config: GatewayConfig) {
    const upstreams = new Map(config.upstreams.map((upstream) => [upstream.name, upstream]));
    for (const model of config.models) {
      const upstream = upstreams.get(model.upstream);
      if (!upstream) throw new Error(`model ${model.name} names unknown upstream ${model.upstream}`);
      this.targets.set(model.name, {
        model,
        upstream,
        provider: providerFor(upstream.schema),
        basePath: new URL(upstream.base_url).pathname.replace(/\/+$/, ''),
      });
    }
  }

  /** Unknown and forbidden models look the same to the caller, as in OpenAI's API: no model enumeration. */
  resolve(caller: Caller, modelName: string): RouteTarget | undefined {
    const target = this.targets.get(modelName);
    return target && mayUseModel(caller, modelName) ? target : undefined;
  }

  visibleTo(caller: Caller): ModelConfig[] {
    return [...this.targets.values()].map((target) => target.model).filter((model) => mayUseModel(caller, model.name));
  }
}
