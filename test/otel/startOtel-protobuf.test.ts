// Separate file (process) from the JSON one: startOtel registers global providers once per process.
import { describe, it } from 'vitest';
import { startOtelScenario } from './startOtelScenario.js';

describe('startOtel over OTLP/HTTP protobuf', () => {
  it('exports spans, records and metrics that a receiver decodes, NaN/±Infinity included', async () => {
    await startOtelScenario('http/protobuf');
  });
});
