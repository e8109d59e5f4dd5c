"""Load on `charrnn serve`: N clients at once, each streaming samples and scoring a text.

    .venv/bin/python bench/serve_load.py [DIR] [--clients 16] [--rounds 5] [--length 200]

Starts a real server on an ephemeral port for DIR (default checkpoints), lets every client
stream `--length` characters and then score a 500-character text, `--rounds` times, and
prints requests, errors, and the median and worst latency to the first streamed character.
Each sample is checked against the library's own sample for the same seed.
"""
from __future__ import annotations

import argparse
import http.client
import json
import statistics
import threading
import time

import charrnn
from charrnn.serve import make_server


def stream(port, body):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    start = time.perf_counter()
    conn.request("POST", "/api/sample", json.dumps(body), {"Content-Type": "application/json"})
    res = conn.getresponse()
    if res.status != 200:
        raise RuntimeError(f"sample: {res.status} {res.read()[:200]!r}")
    text, first = "", None
    for line in res:
        event = json.loads(line)
        if "c" in event:
            first = first or time.perf_counter() - start
            text += event["c"]
    conn.close()
    return text, first


def score(port, text):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("POST", "/api/score", json.dumps({"text": text}), {"Content-Type": "application/json"})
    res = conn.getresponse()
    body = json.loads(res.read())
    conn.close()
    if res.status != 200:
        raise RuntimeError(f"score: {res.status} {body}")
    return body["loss"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory", nargs="?", default="checkpoints")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--length", type=int, default=200)
    args = ap.parse_args()
    server = make_server(args.directory, port=0, log=lambda line: None)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    _, model = server.store.get()
    text = "".join(charrnn.sample(model, length=500, seed=99))
    expected = {i: "".join(charrnn.sample(model, length=args.length, seed=i)) for i in range(args.clients)}
    ref = charrnn.evaluate(model, text).loss
    latencies, errors, wrong, requests = [], [], [0], [0]
    barrier = threading.Barrier(args.clients)

    def client(i):
        barrier.wait()
        for _ in range(args.rounds):
            try:
                got, first = stream(port, {"length": args.length, "seed": i})
                latencies.append(first)
                requests[0] += 1
                wrong[0] += got != expected[i]
                loss = score(port, text)
                requests[0] += 1
                wrong[0] += abs(loss - ref) > 1e-5
            except Exception as exc:  # noqa: BLE001  counted and reported
                errors.append(repr(exc))

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    server.shutdown()
    step = model.meta.get("step")
    print(f"{args.directory} (step {step}, H={model.config.hidden_size}): "
          f"{args.clients} clients x {args.rounds} rounds "
          f"(sample of {args.length} chars + score of 500 chars): {requests[0]} requests in {wall:.1f} s, "
          f"{len(errors)} errors, {wrong[0]} wrong answers; latency to the first character: "
          f"median {statistics.median(latencies) * 1000:.0f} ms, worst {max(latencies) * 1000:.0f} ms")
    for e in errors[:5]:
        print("  error:", e)


if __name__ == "__main__":
    main()
