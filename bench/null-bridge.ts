// A bridge in a process of its own, whose only backend discards every event: bench/bridge-ingest's
// (C2) and (C3) measure this process's CPU alone, so the client sending to it is not counted.
// Protocol (IPC): it sends { port, grpcPort } once listening; to 'start' it answers 'started' and
// starts counting; to 'stop' it answers { cpuMicros, metricPoints } since 'start', then exits.

import { createBridge } from '../src/bridge/RuntelBridge.js';
import { NullBackend } from './null-backend.js';

const sink = new NullBackend();
const bridge = await createBridge({ port: 0, grpcPort: 0, targets: [sink], log: () => undefined });
let since: NodeJS.CpuUsage | undefined;
process.on('message', (message) => {
  if (message === 'start') {
    sink.metricPoints = 0;
    since = process.cpuUsage();
    process.send!('started');
  } else if (message === 'stop') {
    const used = process.cpuUsage(since);
    process.send!({ cpuMicros: used.user + used.system, metricPoints: sink.metricPoints }, () => {
      void bridge.close().then(() => process.exit(0));
    });
  }
});
process.send!({ port: new URL(bridge.url).port, grpcPort: bridge.grpcPort });
