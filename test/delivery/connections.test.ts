// How the MLflow client opens its connections. `mlflow server --workers N` is a pre-fork server: each
// connection is served by the worker that accepted it, for its whole life, and connections opened at
// once mostly land on one worker. So new connections are opened 25 ms apart, and over http each is
// renewed once older than 1 s. A local HTTP server records when each connection opened and what it served.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { MlflowClient } from '../../src/index.js';
import { spacedConnector } from '../../src/delivery/HttpClient.js';

interface Recorded {
  url: string;
  /** Per connection, in the order opened: when it opened (ms) and the requests it served. */
  connections: Array<{ openedAt: number; requests: number }>;
  close: () => Promise<void>;
}

/** Answers get-by-name after `delayMillis`, as a server busy with a request would. */
async function recordingServer(delayMillis: number): Promise<Recorded> {
  const connections: Recorded['connections'] = [];
  const bySocket = new Map<Socket, Recorded['connections'][number]>();
  const server: Server = createServer((req, res) => {
    bySocket.get(req.socket)!.requests++;
    setTimeout(() => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ experiment: { experiment_id: '1' } }));
    }, delayMillis);
  });
  server.on('connection', (socket: Socket) => {
    const connection = { openedAt: performance.now(), requests: 0 };
    connections.push(connection);
    bySocket.set(socket, connection);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    connections,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('the MLflow client spreads its connections over a pre-fork server', () => {
  const closing: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const close of closing.splice(0)) await close();
  });

  it('4 requests at once open their 4 connections spread over at least 40 ms', async () => {
    const server = await recordingServer(200);
    const client = new MlflowClient({ trackingUri: server.url });
    closing.push(server.close, () => client.close());
    await Promise.all(Array.from({ length: 4 }, () => client.getExperimentIdByName('x')));
    expect(server.connections.map((c) => c.requests)).toEqual([1, 1, 1, 1]);
    // 3 gaps of 25 ms. The server, in this process, sees a connection when its event loop gets to it,
    // so under load two may be seen together (before the spacing: all 4 within 3 ms).
    expect(server.connections[3]!.openedAt - server.connections[0]!.openedAt).toBeGreaterThanOrEqual(40);
  });

  it('connections stay 25 ms apart when the event loop was blocked past their turn', async () => {
    const calls: number[] = [];
    const connect = spacedConnector((_options, callback) => {
      calls.push(performance.now());
      (callback as (...args: unknown[]) => void)(null, null);
    }, 25, new AbortController().signal, false);
    const opened = Array.from({ length: 4 }, () => new Promise<void>((resolve) => connect({ hostname: 'x', host: 'x', protocol: 'http:', port: '80' }, () => resolve())));
    // A busy process: the loop comes back 100 ms later, after every turn was due.
    const until = performance.now() + 100;
    while (performance.now() < until);
    await Promise.all(opened);
    const gaps = calls.slice(1).map((t, i) => t - calls[i]!);
    // Before: each turn was set when asked for, so the 3 late ones opened together (gaps under 1 ms).
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(24);
  });

  it('over http a connection older than 1 s is replaced by the next request, so a slow stream of requests re-draws its worker', async () => {
    const server = await recordingServer(0);
    const client = new MlflowClient({ trackingUri: server.url });
    closing.push(server.close, () => client.close());
    for (let i = 0; i < 10; i++) {
      await client.getExperimentIdByName('x');
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
    const served = server.connections.map((c) => c.requests);
    expect(served.reduce((a, b) => a + b, 0)).toBe(10);
    // ~3 s of requests: a new connection about every second (kept for all 10 before renewal).
    expect(served.length).toBeGreaterThanOrEqual(2);
    expect(Math.max(...served)).toBeLessThanOrEqual(5);
  });

  it("a fast server's requests do not wait for new connections: 400 in a row open about one a second", async () => {
    const server = await recordingServer(0);
    const client = new MlflowClient({ trackingUri: server.url });
    closing.push(server.close, () => client.close());
    const start = performance.now();
    for (let i = 0; i < 400; i++) await client.getExperimentIdByName('x');
    const seconds = (performance.now() - start) / 1000;
    // Renewed by count (every 8 requests) the client opened 386 connections, 25 ms apart, in 9.6 s: at
    // most 320 requests/s whatever the server's speed (a bridge taking 20,000 short runs took minutes).
    expect(server.connections.length).toBeLessThanOrEqual(2 + Math.floor(seconds));
  });
});
