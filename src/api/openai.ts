import { z } from 'zod';

/*
 * The request shapes the gateway needs to understand. Schemas are deliberately loose (passthrough) beyond the
 * fields the gateway reads: the provider validates the rest, and newer OpenAI fields must not be rejected here.
 */

const messageSchema = z.looseObject({
  role: z.string().min(1),
});

export const chatCompletionRequestSchema = z.looseObject({
  model: z.string().min(1, 'model must not be empty').max(256),
  messages: z.array(messageSchema).min(1, 'messages must contain at least one message'),
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
  max_tokens: z.number().int().nonnegative().nullish(),
  max_completion_tokens: z.number().int().nonnegative().nullish(),
});
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;

export const embeddingsRequestSchema = z.looseObject({
  model: z.string().min(1, 'model must not be empty').max(256),
  input: z.union([
    z.string(),
    z.array(z.string()).min(1),
    z.array(z.number().int()).min(1),
    z.array(z.array(z.number().int()).min(1)).min(1),
  ]),
});
export type EmbeddingsRequest = z.infer<typeof embeddingsRequestSchema>;

/** Usage as the OpenAI API reports it; every field optional because providers and versions differ. */
export const openAIUsageSchema = z.looseObject({
  prompt_tokens: z.number().int().nonnegative().optional(),
  completion_tokens: z.number().int().nonnegative().optional(),
  total_tokens: z.number().int().nonnegative().optional(),
  prompt_tokens_details: z.looseObject({ cached_tokens: z.number().int().nonnegative().nullish() }).nullish(),
  completion_tokens_details: z.looseObject({ reasoning_tokens: z.number().int().nonnegative().nullish() }).nullish(),
});

/** The body of a chat completion, embeddings response or stream chunk, as far as the gateway reads it. */
export const openAIResultSchema = z.looseObject({
  model: z.string().optional(),
  usage: openAIUsageSchema.nullish(),
  choices: z.array(z.unknown()).optional(),
});

/**
 * Token usage normalised across providers: input includes cached reads (OpenAI's convention), output includes
 * reasoning, so pricing can split them without double counting.
 */
export interface TokenUsage {
  inputTokens: number;
  cachedInputTokens: number;
  outputTokens: number;
  reasoningTokens: number;
  totalTokens: number;
}

export function usageFromOpenAI(usage: z.infer<typeof openAIUsageSchema>): TokenUsage {
  const inputTokens = usage.prompt_tokens ?? 0;
  const outputTokens = usage.completion_tokens ?? 0;
  return {
    inputTokens,
    cachedInputTokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
    outputTokens,
    reasoningTokens: usage.completion_tokens_details?.reasoning_tokens ?? 0,
    totalTokens: usage.total_tokens ?? inputTokens + outputTokens,
  };
}

/** The first validation problem in a form the OpenAI SDK shows usefully: a message and the offending param. */
export function describeFirstIssue(error: z.ZodError): { message: string; param: string | null } {
  const issue = error.issues[0];
  if (!issue) return { message: 'Invalid request body.', param: null };
  const param = issue.path.length > 0 ? issue.path.map(String).join('.') : null;
  return { message: param ? `Invalid value for '${param}': ${issue.message}.` : `${issue.message}.`, param };
}
