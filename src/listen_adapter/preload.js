// supervise's listen adapter for Node (SPEC section 6), loaded by `--require` in
// NODE_OPTIONS. Written by supervise next to its runtime files; do not edit.
//
// 1. `net.Server#listen` (and so http, https, express, fastify, koa) asked for a port or
//    unix path that is one of the app's `listen` addresses uses the socket supervise
//    passed (fd 3...) instead of binding it: every instance shares one socket. Other
//    listen calls (other ports, listen(0), fds, handles) are left alone.
// 2. When the app has no handler of its own for its stop signal, the signal drains it:
//    stop accepting, `Connection: close` on requests in flight and on new requests of
//    open connections, close connections idle for IDLE_GRACE_MS, then die of the signal
//    as before once the HTTP servers are closed.
//
// Only the process the sockets were passed to (LISTEN_PID) is adapted; the module
// takes itself out of NODE_OPTIONS so that the app's own children never load it.
'use strict';
(function superviseListenAdapter() {
  const env = process.env;
  const mine = ' --require ' + JSON.stringify(__filename);
  if (typeof env.NODE_OPTIONS === 'string') {
    const rest = (' ' + env.NODE_OPTIONS).replace(mine, '').trim();
    if (rest === '') delete env.NODE_OPTIONS;
    else env.NODE_OPTIONS = rest;
  }
  if (env.LISTEN_PID !== String(process.pid)) return;
  const count = parseInt(env.LISTEN_FDS, 10);
  let addresses;
  try {
    addresses = JSON.parse(env.SUPERVISE_LISTEN || '[]');
  } catch (e) {
    return;
  }
  if (!(count > 0) || !Array.isArray(addresses)) return;

  const net = require('net');
  const http = require('http');
  const https = require('https');
  const tls = require('tls');
  const path = require('path');

  // The passed sockets: fd 3 + i for addresses[i].
  const passed = [];
  addresses.slice(0, count).forEach((text, i) => {
    const fd = 3 + i;
    if (typeof text !== 'string') return;
    if (text.startsWith('unix:')) {
      passed.push({ fd, path: text.slice(5), used: false });
      return;
    }
    const m = /^tcp:\/\/(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(text);
    if (m) passed.push({ fd, host: m[1] !== undefined ? m[1] : m[2], port: +m[3], used: false });
  });

  // What a listen(...) call asks for: { port, host } or { path }, or null when it asks
  // for nothing we could pass (a random port, an fd, a handle).
  function asked(args) {
    const a = args[0];
    if (a !== null && typeof a === 'object') {
      if (a.fd !== undefined || a.handle !== undefined || a._handle !== undefined) return null;
      if (typeof a.path === 'string' && a.path !== '') return { path: a.path };
      return { port: a.port, host: a.host };
    }
    if (typeof a === 'string' && !/^\s*\d+\s*$/.test(a)) return { path: a };
    if (typeof a === 'number' || typeof a === 'string') {
      return { port: a, host: typeof args[1] === 'string' ? args[1] : undefined };
    }
    return null;
  }

  function match(want) {
    if (want === null) return null;
    const free = passed.filter((p) => !p.used);
    if (want.path !== undefined) {
      const abs = path.resolve(want.path);
      return free.find((p) => p.path !== undefined && path.resolve(p.path) === abs) || null;
    }
    const port = Number(want.port);
    if (!(port > 0)) return null;
    const same = free.filter((p) => p.port === port);
    return same.find((p) => p.host === want.host) || same[0] || null;
  }

  // The stop signal's drain, for the servers that listen in this process.
  const signal = env.SUPERVISE_STOP_SIGNAL || 'SIGTERM';
  const IDLE_GRACE_MS = 1000;
  const servers = new Set();
  let draining = false;

  function isHttp(server) {
    return server instanceof http.Server || server instanceof https.Server;
  }

  // Connections of an HTTP server, with the requests in flight on each.
  function track(server) {
    if (server.__superviseTracked || !isHttp(server)) return;
    server.__superviseTracked = true;
    const sockets = new Set();
    server.__superviseSockets = sockets;
    const event = server instanceof tls.Server ? 'secureConnection' : 'connection';
    server.on(event, (socket) => {
      socket.__superviseInFlight = new Set();
      socket.__superviseIdleSince = Date.now();
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    server.prependListener('request', (req, res) => {
      const socket = req.socket;
      if (draining) res.shouldKeepAlive = false;
      const inFlight = socket.__superviseInFlight;
      if (!inFlight) return;
      inFlight.add(res);
      const done = () => {
        if (inFlight.delete(res)) socket.__superviseIdleSince = Date.now();
      };
      res.once('finish', done);
      res.once('close', done);
    });
  }

  const listen = net.Server.prototype.listen;
  net.Server.prototype.listen = function superviseListen(...args) {
    if (!servers.has(this)) {
      servers.add(this);
      this.once('close', () => servers.delete(this));
      track(this);
    }
    const socket = match(asked(args));
    if (socket === null) return listen.apply(this, args);
    // The fd is closed with the server: it can be taken once.
    socket.used = true;
    const callback = args.find((a) => typeof a === 'function');
    const options = { fd: socket.fd };
    return callback ? listen.call(this, options, callback) : listen.call(this, options);
  };

  function die() {
    process.removeListener(signal, onStop);
    process.kill(process.pid, signal);
  }

  function drain() {
    draining = true;
    const waiting = [];
    for (const server of servers) {
      const open = server.listening || server._connections > 0;
      if (open && isHttp(server)) waiting.push(server);
      // net's close: stop accepting. (http's own close would also drop idle
      // connections at once, racing a client that is sending on one.)
      if (server.listening) net.Server.prototype.close.call(server);
      for (const socket of server.__superviseSockets || []) {
        for (const res of socket.__superviseInFlight) {
          if (!res.headersSent) res.shouldKeepAlive = false;
        }
      }
    }
    if (waiting.length === 0) return die();
    let left = waiting.length;
    const sweep = setInterval(() => {
      const now = Date.now();
      for (const server of waiting) {
        for (const socket of server.__superviseSockets) {
          const idle = now - socket.__superviseIdleSince;
          if (socket.__superviseInFlight.size === 0 && idle >= IDLE_GRACE_MS) socket.destroy();
        }
      }
    }, IDLE_GRACE_MS / 4);
    for (const server of waiting) {
      // 'close' comes once the server stopped accepting and its last connection ended.
      server.once('close', () => {
        left -= 1;
        if (left === 0) {
          clearInterval(sweep);
          die();
        }
      });
    }
  }

  function onStop() {
    // The app handles its stop signal itself: leave it to the app.
    if (process.listeners(signal).some((l) => l !== onStop)) return;
    if (draining) return die(); // a second signal: stop now
    drain();
  }

  try {
    process.on(signal, onStop);
  } catch (e) {
    // A signal Node cannot listen to: no drain, the adapter still shares the sockets.
  }
})();
