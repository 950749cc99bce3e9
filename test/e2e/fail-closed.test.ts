import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { waitFor } from '../../src/localstack/processes.ts';
import { TEST_KEY, useStack } from '../support/stack.ts';

const running = useStack();

const ask = () => running.client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });

describe('with Portcullis down, Envoy fails closed', () => {
  it('refuses requests without reaching the provider, then recovers when Portcullis returns', async () => {
    const { stack } = running;
    await expect(ask()).resolves.toMatchObject({ object: 'chat.completion' });
    stack.mock.clearRequests();

    await stack.stopGateway();
    const error = await ask().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.InternalServerError>).code).toBe('gateway_unavailable');
    const raw = await fetch(`${stack.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${TEST_KEY}` } });
    expect(raw.status).toBe(500);
    expect(stack.mock.requests()).toHaveLength(0);

    await stack.startGateway();
    await waitFor('requests to pass again', async () => (await ask().then(() => true, () => false)), 15_000);
    expect(stack.mock.requests().length).toBeGreaterThan(0);
  });
});
