// The cluster-node example app, run by PM2 for bench/zero_downtime.py. Without LISTEN_FDS
// it listens on PORT (default 3000) like any Node server, which is what PM2's cluster mode
// needs: PM2 forks the workers with Node's `cluster` module and its master shares the port.
// Same code, same graceful shutdown (PM2's reload sends SIGINT, handled like SIGTERM).
// The bench sets BENCH_APP to its copy of server.js, the very file supervise runs.
require(process.env.BENCH_APP || '../../config-examples/cluster-node/server.js');
