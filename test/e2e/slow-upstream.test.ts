import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { useStack } from '../support/stack.ts';

const running = useStack({ upstreamTimeoutMs: 400 });

describe('a provider slower than its timeout', () => {
  it('gets a 504 in OpenAI shape and an access record, not the late answer of the provider', async () => {
    const { client, stack } = running;
    const error = await client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'slow' }] }, { headers: { 'x-mock-first-byte-delay-ms': '3000' } })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(504);
    expect((error as InstanceType<typeof OpenAI.APIError>).code).toBe('gateway_timeout');
    await expect.poll(() => stack.accessLog.records.at(-1)?.status).toBe(504);
    expect(stack.accessLog.records.at(-1)).toMatchObject({ outcome: 'upstream_error', upstream: 'mock' });
  });
});
