"""The real server as its own process: peak memory, and 32 shoppers at once.

`shopdesk serve` is started on a free loopback port over an ingested data
directory. Its resident memory is read from /proc after start-up and, as the
high-water mark (VmHWM), after the load: the peak of the whole server with
the chat model, the embedder, the indexes and the concurrent requests.
`serving`, `own_copy` and `proc_kib` are shared with `python -m eval.loadtest`
and the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from eval.bench.load import run_load, workload


def proc_kib(pid: int, field: str) -> int:
    """A memory field of /proc/PID/status (VmRSS, VmHWM) in KiB; 0 when absent."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def own_copy(shop: Path, data_dir: Path) -> Path:
    """The ingested shop's indexes with a database of its own (none copied), so that a
    benchmark's turns do not land in the served shop's conversations and metrics."""
    shutil.rmtree(data_dir, ignore_errors=True)
    shutil.copytree(shop, data_dir, ignore=shutil.ignore_patterns("*.db*", "*.log"))
    return data_dir


# Every benchmark client comes from one loopback address: the per-client chat limit would
# measure itself, so it is off unless `env` sets it (eval.loadtest does).
_UNLIMITED = {"SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE": "0"}


@contextmanager
def serving(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[tuple[str, int]]:
    """(url, pid) of a ready server over `data_dir`; stopped on exit. `env` adds to or
    replaces the environment (the data dir is always `data_dir`)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = data_dir / "bench-server.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            env={**os.environ, **_UNLIMITED, **(env or {}), "SHOPDESK_DATA_DIR": str(data_dir)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, proc, log_path)
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=60)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text(encoding='utf-8')[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    raise RuntimeError("server did not become ready in 10 minutes")


def run(
    data_dir: Path, messages: Sequence[str], *, clients: int = 32, per_client: int = 3
) -> dict[str, Any]:
    """Start the server, read its memory, run the load, read its peak memory."""
    started = time.perf_counter()
    with serving(data_dir) as (url, pid):
        ready_s = time.perf_counter() - started
        idle_kib = proc_kib(pid, "VmRSS")
        report = asyncio.run(run_load(url, workload(messages, clients, per_client)))
        peak_kib = proc_kib(pid, "VmHWM")
    return {
        "startup_s": round(ready_s, 1),
        "rss_after_start_mib": round(idle_kib / 1024, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "load": report.as_dict(),
    }


def rows(result: dict[str, Any]) -> list[list[str]]:
    load = result["load"]
    return [
        ["server start-up", f"{result['startup_s']} s", "models loaded, prefixes cached"],
        ["server RSS after start", f"{result['rss_after_start_mib']} MiB", ""],
        ["server peak RSS (VmHWM)", f"{result['peak_rss_mib']} MiB", "after the load below"],
        [
            f"{load['clients']} clients x {load['requests'] // max(load['clients'], 1)} requests",
            f"{load['answers_per_s']} answers/s",
            f"p50 {load['latency']['p50_ms']:.0f} ms, p95 {load['latency']['p95_ms']:.0f} ms; "
            f"{load['answered']} answered, {load['busy_503']} x 503, {load['errors']} errors",
        ],
    ]
