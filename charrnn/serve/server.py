"""HTTP for the API and the page: the standard library's ThreadingHTTPServer, one thread per connection.

Why no framework: the work per request is numpy on the CPU, so an async server would hand
it to a thread pool anyway; the routes are a fixed table, the only files served are the
page's own three, held in memory (no path from a request ever reaches the filesystem, which
is what makes traversal impossible rather than filtered), and streaming is chunked writes
to the socket, whose failure is how a closed client is noticed.

Safe by default: requests whose Host (or Origin) header names anything but this server's
own address get 403, which defeats DNS rebinding; errors are JSON, never a traceback.
"""
from __future__ import annotations

import ipaddress
import json
import math
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from . import api

STATIC = {  # URL path -> (file in charrnn/serve/static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}
DRAIN_LIMIT = 16 * api.MAX_BODY  # bytes of an oversized body read (and dropped) to answer 413 cleanly
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class Server(ThreadingHTTPServer):
    daemon_threads = True  # Ctrl-C does not wait for open connections
    request_queue_size = 128  # a burst of clients connecting at once is queued, not refused

    def __init__(self, address, store, directory: str, names=()):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6  # --host :: or ::1
        super().__init__(address, Handler)
        self.store, self.directory = store, directory
        self.static = {path: (resources.files(__package__).joinpath("static", name).read_bytes(), ctype)
                       for path, (name, ctype) in STATIC.items()}
        self.allowed_hosts = allowed_hosts(address[0], self.server_address[1], names)
        self.generating = 0  # samples being generated now (visible in /api/info)
        self.lock = threading.Lock()

    def handle_error(self, request, client_address):
        # A client that went away between requests is not news; anything else is printed.
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


def allowed_hosts(host: str, port: int, extra=()):
    """A predicate on a Host header's value: this server's own address, by name or IP.

    Bound to a loopback address: 127.0.0.1, localhost or [::1], with the port. Bound to a
    specific address: that address too. Bound to all interfaces (0.0.0.0, ::): any IP
    literal, since DNS rebinding needs a host name. `extra`: names the user vouches for
    (--allow-host), such as the machine's own name on the network.
    """
    any_ip = host in ("0.0.0.0", "::", "")
    names = {"localhost", "127.0.0.1", "[::1]", host.lower(), f"[{host.lower()}]", *(n.lower() for n in extra)}

    def ok(value: str) -> bool:
        value = value.strip().lower()
        name, sep, p = value.rpartition(":")
        if not sep or name.endswith(":") or (value.startswith("[") and not name.endswith("]")):
            name, p = value, ""  # no port (or a bare IPv6 address)
        if p != str(port) and not (p == "" and port == 80):
            return False
        if name in names:
            return True
        if any_ip:
            try:
                ipaddress.ip_address(name.strip("[]"))
                return True
            except ValueError:
                return False
        return False

    return ok


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # a client that stops reading a stream for this long is dropped

    def version_string(self):
        return "charrnn"  # no Python version in the Server header

    # -- dispatch ---------------------------------------------------------------------------
    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        self._streaming = False
        try:
            if not self._host_ok():
                raise api.ApiError(403, "this server answers only to its own address (Host or Origin header refused)")
            url = urlsplit(self.path)
            route = ROUTES.get((method, url.path))
            if route is None:
                if any(url.path == p for _, p in ROUTES) or url.path in self.server.static:
                    raise api.ApiError(405, f"{url.path} does not take {method}")
                raise api.ApiError(404, "not found")
            route(self, url)
        except api.ApiError as exc:
            self._send_json({"error": str(exc), "status": exc.status}, exc.status)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception:  # noqa: BLE001  a bug must not take the server down or leak a traceback
            traceback.print_exc(file=sys.stderr)
            if self._streaming:  # too late for a status: end the stream by closing it
                self.close_connection = True
            else:
                self._send_json({"error": "internal error (see the server's log)", "status": 500}, 500)

    def _host_ok(self) -> bool:
        ok = self.server.allowed_hosts
        host = self.headers.get("Host")
        if host is None or not ok(host):
            return False
        origin = self.headers.get("Origin")
        if origin is not None and origin != "null":
            parts = urlsplit(origin)
            return parts.scheme == "http" and ok(parts.netloc)
        return True

    # -- responses --------------------------------------------------------------------------
    def _send_bytes(self, body: bytes, ctype: str, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, obj, status: int = 200) -> None:
        try:
            self._send_bytes(to_json(obj).encode("utf-8"), "application/json", status)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True

    def send_error(self, code, message=None, explain=None):
        # The standard library's own errors (malformed request line, unsupported method,
        # header too long) as JSON too.
        self.close_connection = True
        try:
            self._send_json({"error": message or self.responses.get(code, ("error",))[0], "status": code}, code)
        except Exception:  # noqa: BLE001  the connection may be beyond answering
            pass

    def log_message(self, format, *args):
        pass  # quiet: the terminal shows the URL and reloads, not every request

    def _body(self) -> dict:
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length is None:
            self.close_connection = True
            raise api.ApiError(400, "send the JSON body with a Content-Length header")
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise api.ApiError(400, f"bad Content-Length {length!r}") from None
        if n > api.MAX_BODY or n < 0:
            self._drain(n)
            raise api.ApiError(413, f"the body is {n} bytes, over the limit of {api.MAX_BODY}")
        return api.parse_body(self.rfile.read(n))

    def _drain(self, n: int) -> None:
        """Read and drop an oversized body, so the client, still sending it, gets the 413
        rather than a reset connection; a body past DRAIN_LIMIT is not worth reading."""
        self.close_connection = True
        if not 0 < n <= DRAIN_LIMIT:
            return
        while n > 0:
            piece = self.rfile.read(min(n, 1 << 16))
            if not piece:
                break
            n -= len(piece)

    def handle_expect_100(self):
        # `Expect: 100-continue` (curl sends it for bodies over 1 KB): refuse an oversized
        # body before the client sends it.
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > api.MAX_BODY:
            self.close_connection = True
            self._send_json({"error": f"the body is {int(length)} bytes, over the limit of {api.MAX_BODY}",
                             "status": 413}, 413)
            return False
        return super().handle_expect_100()

    # -- routes ---------------------------------------------------------------------------
    def static(self, url) -> None:
        body, ctype = self.server.static[url.path]
        self._send_bytes(body, ctype)

    def info(self, url) -> None:
        from .. import __version__

        info = self.server.store.info()
        info.update(charrnn_version=__version__, directory=self.server.directory,
                    generating=self.server.generating, limits=LIMITS)
        self._send_json(info)

    def metrics(self, url) -> None:
        query = parse_qs(url.query)
        try:
            since = int(query.get("since", ["0"])[0])
            if since < 0:
                raise ValueError
        except ValueError:
            raise api.ApiError(422, "since must be a row number, 0 or more") from None
        self._send_json(api.metrics(self.server.directory, since))

    def score(self, url) -> None:
        self._send_json(api.score(self.server.store, self._body()))

    def activations(self, url) -> None:
        self._send_json(api.activations(self.server.store, self._body()))

    def sample(self, url) -> None:
        args = api.sample_request(self.server.store, self._body())
        server = self.server
        with server.lock:
            if server.generating >= api.MAX_GENERATIONS:
                raise api.ApiError(503, f"{server.generating} samples are being generated; try again shortly")
            server.generating += 1
        try:
            self._stream(api.generate(**args))
        finally:
            with server.lock:
                server.generating -= 1

    def _stream(self, events) -> None:
        """Newline-delimited JSON, one chunk per event, until the events end or the client goes."""
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Accel-Buffering", "no")
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        self._streaming = True
        try:
            for event in events:
                line = (to_json(event) + "\n").encode("utf-8")
                # A write to a closed connection raises, which ends the generator and its work.
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.write(b"0\r\n\r\n")
        finally:
            events.close()


ROUTES = {
    **{("GET", path): Handler.static for path in STATIC},
    ("GET", "/api/info"): Handler.info,
    ("GET", "/api/metrics"): Handler.metrics,
    ("POST", "/api/sample"): Handler.sample,
    ("POST", "/api/score"): Handler.score,
    ("POST", "/api/activations"): Handler.activations,
}
LIMITS = {"body_bytes": api.MAX_BODY, "text_chars": api.MAX_TEXT, "prime_chars": api.MAX_PRIME,
          "length": api.MAX_LENGTH, "temperature": api.MAX_TEMPERATURE, "top": api.MAX_TOP,
          "units": api.MAX_UNITS, "rate": api.MAX_RATE, "generations": api.MAX_GENERATIONS}


def to_json(obj) -> str:
    """JSON a browser can parse: NaN and infinities (a diverged run's metrics) become null."""
    try:
        return json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj
