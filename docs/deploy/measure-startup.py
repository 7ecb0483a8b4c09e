#!/usr/bin/env python3
"""Start-up time of the gateway binary: from exec to the "gateway listening"
log line, and to the first 200 from /health/liveliness.

    cargo build --release -p gateway
    python3 docs/deploy/measure-startup.py [path/to/gateway] [runs]

The gateway runs on the embedded quickstart config, on a free port of
127.0.0.1. Prints the best and median of each figure.
"""
import json
import socket
import statistics
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def alive(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET /health/liveliness HTTP/1.0\r\nHost: x\r\n\r\n")
            return s.recv(12).endswith(b" 200")
    except OSError:
        return False


def once(binary):
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [binary, "--host", "127.0.0.1", "--port", str(port), "--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        listening = None
        for line in process.stderr:
            if "gateway listening" in line:
                listening = time.perf_counter() - started
                break
        while not alive(port):
            time.sleep(0.0005)
        ready = time.perf_counter() - started
        return listening, ready
    finally:
        process.terminate()
        process.wait()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/gateway"
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    results = [once(binary) for _ in range(runs)]
    for name, values in (("listening log line", [r[0] for r in results]),
                         ("first 200 on /health/liveliness", [r[1] for r in results])):
        print(json.dumps({
            "measure": name,
            "runs": runs,
            "best_ms": round(min(values) * 1000, 2),
            "median_ms": round(statistics.median(values) * 1000, 2),
        }))


if __name__ == "__main__":
    main()
