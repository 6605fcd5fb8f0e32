// A plain Node.js HTTP server for supervise's cluster mode: no `cluster` module, no
// master/worker code. supervise binds the port once and gives every instance the listening
// socket as fd 3 (systemd socket activation); the kernel spreads connections between them.
'use strict';
const http = require('http');
const net = require('net');

const version = process.env.VERSION || '1';
const instance = process.env.SUPERVISE_INSTANCE || process.env.NODE_APP_INSTANCE || '-';
let draining = false; // set on SIGTERM, see shutdown() below

const server = http.createServer((req, res) => {
  // While draining, every response asks the client to close the connection, so keep-alive
  // clients reconnect, and their new connection goes to an instance that still accepts.
  if (draining) res.setHeader('Connection', 'close');
  res.setHeader('Content-Type', 'text/plain');
  res.end(`hello from instance ${instance} (pid ${process.pid}), version ${version}\n`);
});

// Socket activation: LISTEN_PID names the process the sockets are meant for. Outside
// supervise (or systemd) it listens on PORT like any Node server.
const activated = process.env.LISTEN_FDS && Number(process.env.LISTEN_PID) === process.pid;
const target = activated ? { fd: 3 } : { port: Number(process.env.PORT || 3000) };
server.listen(target, () => {
  console.log(`listening on ${activated ? 'fd 3' : `port ${target.port}`}, version ${version}`);
});

// Graceful shutdown: stop accepting, finish what is in flight, then exit.
function shutdown(signal) {
  if (draining) return;
  draining = true;
  console.log(`${signal}: draining`);
  // net.Server's close stops accepting and calls back once every connection has ended.
  // (http.Server.close() would also drop idle keep-alive connections at once, which races
  // with a request the client is sending on one at that moment: it would see the connection
  // close without an answer.) The listening socket stays open in supervise and in the other
  // instances, so connections arriving meanwhile wait in its queue; none is refused.
  net.Server.prototype.close.call(server, () => {
    console.log('drained, exiting');
    process.exit(0);
  });
  // A busy keep-alive connection closes after its next response (Connection: close above);
  // one that stays idle is closed after a second.
  // (A request still running past stop_timeout is ended by supervise's SIGKILL.)
  setTimeout(() => server.closeIdleConnections(), 1000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT')); // what PM2 sends
