"""A real `charrnn serve` server on an ephemeral port, in a thread, and a raw HTTP client for it."""
from __future__ import annotations

import contextlib
import http.client
import json
import threading
import time

from charrnn.serve import make_server


@contextlib.contextmanager
def running_server(directory, checkpoint=None, host="127.0.0.1", allow_hosts=()):
    """Yield the server (bound to port 0, serving in a thread); shut down afterwards."""
    logged = []
    server = make_server(directory, checkpoint, host=host, port=0, log=logged.append, allow_hosts=allow_hosts)
    server.logged = logged
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.store.stop()
        server.server_close()


def port_of(server) -> int:
    return server.server_address[1]


def request(server, method, path, body=None, headers=None, raw=None):
    """(status, parsed JSON or bytes, headers) of one request; the path is sent exactly as given."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=30)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    hdrs = {"Host": f"127.0.0.1:{port_of(server)}"}
    if data is not None:
        hdrs["Content-Type"] = "application/json"
        hdrs["Content-Length"] = str(len(data))
    hdrs.update(headers or {})
    # skip_host: the Host header is ours to set (or to leave out).
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for k, v in hdrs.items():
        if v is not None:
            conn.putheader(k, v)
    conn.endheaders(data)
    res = conn.getresponse()
    payload = res.read()
    conn.close()
    try:
        payload = json.loads(payload)
    except ValueError:
        pass
    return res.status, payload, dict(res.getheaders())


def sample_events(server, body):
    """All events of a streamed sample, and the seconds until the first character arrived."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(server), timeout=60)
    start = time.perf_counter()
    conn.request("POST", "/api/sample", json.dumps(body), {"Content-Type": "application/json"})
    res = conn.getresponse()
    assert res.status == 200, res.read()
    events, first = [], None
    for line in res:
        event = json.loads(line)
        if first is None and "c" in event:
            first = time.perf_counter() - start
        events.append(event)
    conn.close()
    return events, first


def text_of(events) -> str:
    return "".join(e["c"] for e in events if "c" in e)


def wait_for(predicate, timeout=20.0, interval=0.05):
    """Poll until predicate() is true; False if it never was (the caller asserts)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
