"""`charrnn serve`: one local page and a JSON API to generate from, look inside and watch a model.

    run("checkpoints")            # http://127.0.0.1:8000/ until Ctrl-C

store.py keeps the models loaded and reloads replaced files, api.py validates requests and
computes answers, server.py speaks HTTP; static/ is the page (plain HTML, CSS, JavaScript).
"""
from __future__ import annotations

import errno
import os
import sys
from typing import Callable, Optional

from ..errors import CharRNNError


def make_server(directory: str = "checkpoints", checkpoint: Optional[str] = None, host: str = "127.0.0.1",
                port: int = 8000, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
                allow_hosts=()):
    """A started model store and a bound (not yet serving) server; port 0 picks a free port."""
    from .server import Server
    from .store import ModelStore

    if checkpoint is None and not os.path.isdir(directory):
        raise CharRNNError(f"no such directory: {directory} (train first, or pass --checkpoint PATH)")
    if checkpoint is not None and not os.path.isfile(checkpoint):
        raise CharRNNError(f"checkpoint not found: {checkpoint}")
    store = ModelStore(directory, checkpoint, log=log).start()
    try:
        return Server((host, port), store, directory, allow_hosts)
    except OSError as exc:
        store.stop()
        in_use = exc.errno == errno.EADDRINUSE
        hint = " (another server is there: pick another --port, or 0 for any free one)" if in_use else ""
        raise CharRNNError(f"cannot listen on {host}:{port}: {exc.strerror or exc}{hint}") from None


def url_of(server) -> str:
    host, port = server.server_address[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def run(directory: str = "checkpoints", checkpoint: Optional[str] = None, host: str = "127.0.0.1",
        port: int = 8000, echo: Callable[[str], None] = print, allow_hosts=()) -> None:
    """Serve until interrupted (KeyboardInterrupt propagates, after the socket is closed)."""
    server = make_server(directory, checkpoint, host, port, allow_hosts=allow_hosts)
    info = server.store.info()
    default = info["default"]
    what = (f"{server.store.entries[default].path} (step {info['models'][default].get('step')})" if default
            else f"nothing yet: waiting for a checkpoint in {directory}/")
    echo(f"charrnn serve: {what}")
    echo(f"charrnn serve: open {url_of(server)}  (Ctrl-C stops)")
    try:
        server.serve_forever(poll_interval=0.25)
    finally:
        server.store.stop()
        server.server_close()
