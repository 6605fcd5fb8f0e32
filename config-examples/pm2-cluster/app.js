// An app as PM2 users write it: it listens on its port itself and knows nothing of
// supervise, LISTEN_FDS or the cluster module. `pm2 start ecosystem.config.js` runs it as
// 3 instances; `supervise` runs the same file as 3 instances with ecosystem.toml.
'use strict';
const http = require('http');

// A tiny express-style router keeps the example free of npm dependencies. With express
// itself (`const app = express(); app.get(...); app.listen(3000)`) nothing changes:
// express's app.listen is http.createServer(app).listen(...), as here.
function createApp() {
  const routes = [];
  const app = (req, res) => {
    const path = req.url.split('?')[0];
    const route = routes.find((r) => r.method === req.method && r.path === path);
    if (!route) {
      res.statusCode = 404;
      return res.end('not found\n');
    }
    return route.handler(req, res);
  };
  app.get = (path, handler) => routes.push({ method: 'GET', path, handler });
  app.listen = (...args) => http.createServer(app).listen(...args);
  return app;
}

const app = createApp();
const port = process.env.PORT || 3000;

app.get('/', (req, res) => {
  res.setHeader('Content-Type', 'application/json');
  const instance = process.env.NODE_APP_INSTANCE;
  res.end(JSON.stringify({ hello: 'world', instance, pid: process.pid }) + '\n');
});

app.get('/health', (req, res) => res.end('ok\n'));

app.listen(port, () => console.log(`listening on port ${port}`));
