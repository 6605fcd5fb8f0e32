#!/usr/bin/env python3
"""A Python standard-library HTTP server for supervise's cluster mode.

supervise binds the port once and passes the listening socket to every instance as fd 3
(systemd socket activation: LISTEN_FDS, LISTEN_PID); the kernel spreads connections between
the instances. The server tells supervise it is ready with READY=1 on NOTIFY_SOCKET
(sd_notify), and on SIGTERM finishes the requests in flight before it exits.
"""

import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SD_LISTEN_FDS_START = 3
VERSION = os.environ.get("VERSION", "1")
INSTANCE = os.environ.get("SUPERVISE_INSTANCE", "-")


def inherited_socket():
    """The listening socket passed at fd 3, or None when not socket-activated."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None  # absent, or meant for another process
    if int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)  # not for processes we might start
    sock = socket.socket(fileno=SD_LISTEN_FDS_START)  # family and type read from the fd
    # Every instance accepts on this socket, so after a wake-up another instance may have
    # taken the connection: accept must not block (socketserver ignores the EAGAIN). The
    # flag is shared by all processes holding the socket, all of them this same program.
    sock.setblocking(False)
    return sock


def sd_notify(state):
    """Send a state ("READY=1", "STATUS=...", "STOPPING=1") to the supervisor, if any."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.connect(addr)
        s.sendall(state.encode())


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so stopping never cuts a keep-alive connection.
    def do_GET(self):
        body = f"hello from instance {INSTANCE} (pid {os.getpid()}), version {VERSION}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # no line per request


class Server(ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the requests in flight

    def __init__(self, sock):
        if sock is None:  # run by hand: listen on PORT
            super().__init__(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler)
            return
        self.address_family = sock.family
        super().__init__(sock.getsockname(), Handler, bind_and_activate=False)
        self.socket.close()  # the unbound socket made by the constructor
        self.socket = sock
        self.server_name, self.server_port = "localhost", sock.getsockname()[1]


def main():
    sock = inherited_socket()
    server = Server(sock)

    def stop(signum, frame):
        sd_notify("STOPPING=1")
        # shutdown() waits for serve_forever() to return: call it from another thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    where = "fd 3" if sock is not None else f"port {server.server_port}"
    print(f"listening on {where}, version {VERSION}", flush=True)
    sd_notify(f"READY=1\nSTATUS=serving version {VERSION}")
    server.serve_forever(poll_interval=0.5)
    # Stop accepting (the socket stays open in supervise and the other instances, so new
    # connections wait for them), then wait for the requests in flight.
    server.server_close()
    print("drained, exiting", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
