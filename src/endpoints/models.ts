import { CONTINUE, type Decision } from '../extproc/messages.ts';
import type { Endpoint, EndpointProcessor } from './endpoint.ts';

/** `GET /v1/models` is answered by the gateway itself: the models this caller may use, never the provider's list. */
export const modelsEndpoint: Endpoint = {
  method: 'GET',
  path: '/v1/models',
  readsBody: false,
  create(gateway, state): EndpointProcessor {
    state.operation = 'models';
    return {
      onRequestHeaders(): Decision {
        const caller = state.caller;
        const models = caller ? gateway.catalog.visibleTo(caller) : [];
        return {
          action: 'respond',
          status: 200,
          body: {
            object: 'list',
            data: models.map((model) => ({ id: model.name, object: 'model', created: 0, owned_by: model.upstream })),
          },
          details: 'portcullis_models',
        };
      },
      onRequestBody: () => CONTINUE,
      onResponseHeaders: () => CONTINUE,
      onResponseBody: () => CONTINUE,
      onResponseChunk: () => CONTINUE,
    };
  },
};
