import type { AccessRecord } from '../access/record.ts';
import type { Phase } from '../extproc/messages.ts';

/** What the exchange reports; metrics are one implementation, tests use a recorder. */
export interface Telemetry {
  phaseProcessed(phase: Phase, seconds: number): void;
  exchangeOpened(): void;
  exchangeClosed(): void;
  streamOpened(): void;
  streamClosed(): void;
  exchangeFinished(record: AccessRecord): void;
  protocolError(kind: string): void;
}

export const noTelemetry: Telemetry = {
  phaseProcessed: () => {},
  exchangeOpened: () => {},
  exchangeClosed: () => {},
  streamOpened: () => {},
  streamClosed: () => {},
  exchangeFinished: () => {},
  protocolError: () => {},
};

export interface Clock {
  /** Monotonic milliseconds, for durations. */
  monotonicMs(): number;
  /** Wall-clock time, for records. */
  now(): Date;
}

export const systemClock: Clock = {
  monotonicMs: () => performance.now(),
  now: () => new Date(),
};
