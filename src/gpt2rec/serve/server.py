"""Start the server: loopback by default; a non-loopback address only with an API key for writes.

serve("runs/enhanced", host="127.0.0.1", port=8000, api_key_env=None)
"""

from __future__ import annotations

import errno
import gc
import ipaddress
import logging
import os
import socket

from ..errors import UserError, require

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key_from_env(var: str | None) -> str | None:
    """The API key held in environment variable `var` (None: no key)."""
    if var is None:
        return None
    key = os.environ.get(var, "")
    if len(key) < 16:
        raise UserError(f"environment variable {var} must hold an API key of at least 16 characters; set it first")
    return key


def check_bind(host: str, api_key: str | None) -> None:
    if not host.strip():  # was "refusing to listen on  without an API key"
        raise UserError("--host is empty; give an address like 127.0.0.1 (the default)")
    if not is_loopback(host) and api_key is None:
        raise UserError(
            f"refusing to listen on {host} without an API key: writes would be open to the network; "
            "set one with --api-key-env VAR (VAR holding the key) or use --host 127.0.0.1"
        )


def bind_socket(host: str, port: int) -> socket.socket:
    """The bound listening socket, taken before the run is loaded and handed to uvicorn (no race
    between a check and uvicorn's own bind): a port in use is one line, not uvicorn's traceback."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UserError(f"cannot listen on {host} ({exc.strerror or exc}); give an address like 127.0.0.1") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: TIME_WAIT is no conflict
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use; pick another --port") from None
        raise UserError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --host or --port"
        ) from None
    return sock


def serve(
    run_dir, host: str = "127.0.0.1", port: int = 8000, api_key_env: str | None = None, device=None, threads: int = 1
) -> None:
    uvicorn = require("uvicorn", "serve")
    require("fastapi", "serve")
    if not 0 < int(port) < 65536:
        raise UserError(f"port must be between 1 and 65535, got {port}")
    key = api_key_from_env(api_key_env)
    check_bind(host, key)
    import torch

    from .app import create_app
    from .service import load_service

    if int(threads) < 1:
        raise UserError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(int(threads))  # small per-request products: one thread beats contended ones

    sock = bind_socket(host, int(port))  # before the (slow) load: a busy port fails at once
    try:
        app = create_app(load_service(run_dir, device), api_key=key)
        gc.collect()
        gc.freeze()  # the loaded run's objects never change: keep the collector from rescanning them (tail latency)
        writes = "need the X-API-Key header" if key else "are open (loopback only)"
        log.info("serving http://%s:%s/ (API docs at /docs; writes %s); Ctrl+C stops it", host, port, writes)
        config = uvicorn.Config(app, host=host, port=int(port), log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
