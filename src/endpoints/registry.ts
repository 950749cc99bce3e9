import type { Endpoint } from './endpoint.ts';
import { chatCompletionsEndpoint, embeddingsEndpoint } from './model-call.ts';
import { modelsEndpoint } from './models.ts';

const endpoints: readonly Endpoint[] = [chatCompletionsEndpoint, embeddingsEndpoint, modelsEndpoint];

export type EndpointMatch =
  | { kind: 'found'; endpoint: Endpoint }
  | { kind: 'wrong_method'; allowed: string }
  | { kind: 'unknown' };

export function matchEndpoint(method: string, pathWithQuery: string): EndpointMatch {
  const queryStart = pathWithQuery.indexOf('?');
  const path = (queryStart === -1 ? pathWithQuery : pathWithQuery.slice(0, queryStart)).replace(/\/+$/, '');
  const byPath = endpoints.filter((endpoint) => endpoint.path === path);
  const endpoint = byPath.find((candidate) => candidate.method === method);
  if (endpoint) return { kind: 'found', endpoint };
  if (byPath.length > 0) return { kind: 'wrong_method', allowed: byPath.map((candidate) => candidate.method).join(', ') };
  return { kind: 'unknown' };
}
