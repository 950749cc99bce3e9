/**
 * OpenAI's error envelope. Every error the gateway returns, whatever its origin (gateway decision, Envoy, or an
 * upstream of another schema), is shaped like this so unchanged OpenAI SDKs raise their usual typed errors.
 */
export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export interface GatewayError {
  status: number;
  body: OpenAIErrorBody;
}

export function openAIError(
  status: number,
  message: string,
  options: { type?: string; code?: string | null; param?: string | null } = {},
): GatewayError {
  return {
    status,
    body: {
      error: {
        message,
        type: options.type ?? errorTypeForStatus(status),
        param: options.param ?? null,
        code: options.code ?? null,
      },
    },
  };
}

export function errorTypeForStatus(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'invalid_request_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

export const errors = {
  missingKey: () =>
    openAIError(401, 'Missing bearer authentication: send "Authorization: Bearer <virtual key>".', {
      code: 'invalid_api_key',
      type: 'invalid_request_error',
    }),
  invalidKey: () =>
    openAIError(401, 'Incorrect API key provided.', { code: 'invalid_api_key', type: 'invalid_request_error' }),
  unknownPath: (method: string, path: string) =>
    openAIError(404, `Invalid URL (${method} ${path})`, { code: 'unknown_url' }),
  methodNotAllowed: (method: string, path: string, allowed: string) =>
    openAIError(405, `Method ${method} is not allowed on ${path}; use ${allowed}.`, { code: 'method_not_allowed' }),
  unsupportedMediaType: (contentType: string) =>
    openAIError(415, `Unsupported content type "${contentType}": send application/json.`, {
      code: 'unsupported_media_type',
    }),
  bodyTooLarge: (limit: number) =>
    openAIError(413, `Request body exceeds the gateway limit of ${limit} bytes.`, { code: 'request_too_large' }),
  missingBody: () => openAIError(400, 'The request has no body: send a JSON object.', { code: 'invalid_body' }),
  invalidJson: (detail: string) =>
    openAIError(400, `We could not parse the JSON body of your request (${detail}).`, { code: 'invalid_json' }),
  invalidRequest: (message: string, param: string | null) =>
    openAIError(400, message, { code: 'invalid_request', param }),
  missingModel: () =>
    openAIError(400, 'You must provide a model parameter.', { code: 'missing_model', param: 'model' }),
  modelNotFound: (model: string) =>
    openAIError(404, `The model \`${model}\` does not exist or you do not have access to it.`, {
      code: 'model_not_found',
      param: 'model',
    }),
  internal: () =>
    openAIError(500, 'The gateway failed to process this request; it was not sent to any provider.', {
      code: 'gateway_error',
    }),
  misconfigured: (detail: string) =>
    openAIError(500, `The gateway is misconfigured: ${detail}.`, { code: 'gateway_misconfigured' }),
} as const;

/** True when a parsed body already carries OpenAI's error envelope, so it can pass through untouched. */
export function isOpenAIErrorBody(value: unknown): value is OpenAIErrorBody {
  if (typeof value !== 'object' || value === null || !('error' in value)) return false;
  const inner = (value as { error: unknown }).error;
  return typeof inner === 'object' && inner !== null && typeof (inner as { message?: unknown }).message === 'string';
}
