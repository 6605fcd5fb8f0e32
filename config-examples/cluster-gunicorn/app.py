"""A WSGI application, served by gunicorn under supervise (see ecosystem.toml)."""

import os

VERSION = os.environ.get("VERSION", "1")
INSTANCE = os.environ.get("SUPERVISE_INSTANCE", "-")


def application(environ, start_response):
    body = (f"hello from gunicorn instance {INSTANCE}, worker pid {os.getpid()}, "
            f"version {VERSION}\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
