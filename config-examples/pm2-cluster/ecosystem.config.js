// The PM2 file this example started from (kept for comparison; supervise reads
// ecosystem.toml). Each key's counterpart is noted in ecosystem.toml.
module.exports = {
  apps: [
    {
      name: 'web',
      script: 'app.js',
      instances: 3,
      exec_mode: 'cluster',
      max_memory_restart: '300M',
      kill_timeout: 5000,
      out_file: 'logs/web.out.log',
      error_file: 'logs/web.err.log',
      env: { NODE_ENV: 'production' },
    },
  ],
};
