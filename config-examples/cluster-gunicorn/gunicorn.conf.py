# gunicorn reads ./gunicorn.conf.py by default (the app's cwd is this folder).
# No `bind`: gunicorn takes the listening sockets from LISTEN_FDS when LISTEN_PID is its own
# pid (socket activation, as under systemd), and sends READY=1 to NOTIFY_SOCKET.
workers = 2
graceful_timeout = 10      # SIGTERM: workers finish their requests, up to this long
# gunicorn >= 25.1 opens a control socket at one fixed path per user; the instances would
# share it. Older versions ignore this unknown setting.
control_socket_disable = True
