import { errorTypeForStatus, isOpenAIErrorBody, type OpenAIErrorBody } from '../api/errors.ts';
import { openAIResultSchema, usageFromOpenAI } from '../api/openai.ts';
import type { Operation, Provider, TranslatedResult, TranslatedStreamEvent } from './provider.ts';

const pathFor: Record<Operation, string> = {
  'chat.completions': '/chat/completions',
  embeddings: '/embeddings',
};

function readResult(body: unknown): Omit<TranslatedResult, 'body'> & { choiceCount: number | undefined } {
  const parsed = openAIResultSchema.safeParse(body);
  if (!parsed.success) return { usage: undefined, servedModel: undefined, choiceCount: undefined };
  return {
    usage: parsed.data.usage ? usageFromOpenAI(parsed.data.usage) : undefined,
    servedModel: parsed.data.model,
    choiceCount: parsed.data.choices?.length,
  };
}

/** OpenAI and every OpenAI-compatible server (vLLM, Ollama, LM Studio, the bundled mock): no translation. */
export const openAIProvider: Provider = {
  schema: 'openai',

  translateRequest(operation, request, upstreamModel) {
    return { path: pathFor[operation], body: { ...request, model: upstreamModel } };
  },

  translateResponse(_operation, body) {
    const { usage, servedModel } = readResult(body);
    return { body: undefined, usage, servedModel };
  },

  translateStreamEvent(_operation, data): TranslatedStreamEvent {
    const { usage, servedModel, choiceCount } = readResult(data);
    return { data: undefined, usage, servedModel, isUsageOnly: usage !== undefined && choiceCount === 0 };
  },

  translateError(status, body, contentType) {
    return openAICompatibleError(status, body, contentType);
  },

  credentialHeaders(credential): Record<string, string> {
    return credential === undefined ? {} : { authorization: `Bearer ${credential}` };
  },
};

/**
 * Upstream errors that are already OpenAI-shaped pass through; anything else (HTML from a load balancer, plain
 * text, another JSON shape) is wrapped. The upstream text is not copied in: it can echo prompt content.
 */
export function openAICompatibleError(
  status: number,
  body: Buffer,
  contentType: string | undefined,
): OpenAIErrorBody | undefined {
  if (contentType?.includes('json')) {
    try {
      if (isOpenAIErrorBody(JSON.parse(body.toString('utf8')))) return undefined;
    } catch {
      // not JSON after all: wrapped below
    }
  }
  return {
    error: {
      message: `The upstream provider answered with HTTP ${status}.`,
      type: errorTypeForStatus(status),
      param: null,
      code: `upstream_${status}`,
    },
  };
}
