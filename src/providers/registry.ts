import type { ProviderSchema } from '../config/schema.ts';
import { openAIProvider } from './openai.ts';
import type { Provider } from './provider.ts';

const providers: Record<ProviderSchema, Provider> = {
  openai: openAIProvider,
};

export function providerFor(schema: ProviderSchema): Provider {
  return providers[schema];
}
