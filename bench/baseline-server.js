'use strict';
/**
 * The naive raw-`ws` broadcast server the benchmark measures our app against (issue 6):
 * node:http + ws, the seed's URL and frames, `JSON.stringify` once per incoming message, then
 * `client.send(str)` in a loop over a Set. Deliberately plain: no validation, limits or logging.
 *
 * Rooms: `?room=NAME` picks a Set (default `test`, the seed's group) and the greeting then carries
 * `room`, as our app's does, so the 10-rooms workload compares like with like.
 *
 * Usage: `node bench/baseline-server.js [port]` (or env PORT, HOST; default 127.0.0.1:8000).
 */
const http = require('node:http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] ?? process.env.PORT ?? 8000);
const host = process.env.HOST ?? '127.0.0.1';
const PATH = '/ws/socket-server';

/** @type {Map<string, Set<import('ws').WebSocket>>} */
const rooms = new Map();

const server = http.createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ noServer: true });

server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url ?? '/', 'ws://localhost');
  const path = url.pathname.endsWith('/') ? url.pathname.slice(0, -1) : url.pathname;
  if (path !== PATH) return socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, url.searchParams.get('room')));
});

/**
 * @param {import('ws').WebSocket} ws
 * @param {string | null} roomParam
 */
function onConnection(ws, roomParam) {
  const name = roomParam ?? 'test';
  let room = rooms.get(name);
  if (!room) rooms.set(name, (room = new Set()));
  room.add(ws);
  const greeting = { type: 'connection_established', message: 'You are connected!' };
  ws.send(JSON.stringify(roomParam === null ? greeting : { ...greeting, room: name }));

  ws.on('message', (data) => {
    let text;
    try {
      text = JSON.parse(String(data)).message;
    } catch {
      return;
    }
    const str = JSON.stringify({ type: 'chat', message: text });
    for (const client of /** @type {Set<import('ws').WebSocket>} */ (room)) client.send(str);
  });
  ws.on('close', () => room?.delete(ws));
  ws.on('error', () => {});
}

server.listen(port, host, () => console.log(`baseline listening on ws://${host}:${port}${PATH}/`));

// Exit cleanly on SIGTERM so `node --cpu-prof` writes its profile.
process.on('SIGTERM', () => {
  for (const room of rooms.values()) for (const ws of room) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});
