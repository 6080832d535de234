"""Real servers for tests, each started as its own process on a free loopback port and
stopped on exit: ShopDesk itself (`shopdesk serve`), and the scale-out path's chroma server
(`chroma run`, from chromadb), PostgreSQL (the Debian package's initdb and pg_ctl, in a
temporary directory) and an OpenAI-compatible model server (`python -m llama_cpp.server`).
A missing program fails the test with the package to install: CI installs them (the
Makefile's system packages), so a silent skip would hide that the path went untested.
"""

from __future__ import annotations

import contextlib
import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from eval.bench.server import serving
from tests.support.shopdesk import SHOPDESK, env, load_orders

START_TIMEOUT_S = 180.0
PG_USER = "shopdesk"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until(
    ready: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float,
    poll_s: float,
) -> None:
    """Until `ready()`; fails with the log's tail when the process dies or never gets there."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args!r} exited ({proc.returncode}):\n{_tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            if ready():
                return
        time.sleep(poll_s)
    pytest.fail(f"{proc.args!r} not ready after {timeout_s:g} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:] if log.is_file() else "(no log)"


@contextlib.contextmanager
def _process(
    args: list[str],
    log: Path,
    ready: Callable[[], bool],
    *,
    environ: dict[str, str] | None = None,
    timeout_s: float = START_TIMEOUT_S,
    poll_s: float = 0.25,
) -> Iterator[None]:
    """`args` running, its output to `log`, once `ready()`; `environ` replaces the
    environment (by default this process's, unbuffered: the log is read while it runs)."""
    with log.open("wb") as out:
        if environ is None:
            environ = os.environ | {"PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=environ)
        try:
            _wait_until(ready, proc, log, timeout_s, poll_s)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def shopdesk_server(
    environ: dict[str, str],
    log: Path,
    *,
    probe: str = "/readyz",
    timeout_s: float = START_TIMEOUT_S,
    poll_s: float = 0.25,
) -> Iterator[str]:
    """`shopdesk serve` with the environment `environ` (which names its data dir), its
    output to `log`; yields its URL once `probe` answers 200."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [*SHOPDESK, "serve", "--host", "127.0.0.1", "--port", str(port)]

    def ready() -> bool:
        return httpx.get(f"{url}{probe}", timeout=2).status_code == 200

    with _process(args, log, ready, environ=environ, timeout_s=timeout_s, poll_s=poll_s):
        yield url


@contextlib.contextmanager
def own_server(
    data_dir: Path, into: Path, overrides: dict[str, str] | None = None, *, orders: bool = False
) -> Iterator[tuple[str, int]]:
    """(url, pid) of a server of its own over a copy of the ingested shop at `into`.

    For tests that would disturb the session's server (a short queue under load, a
    fuzzer writing feedback and ticket replies) or that it would disturb. The database is
    not copied, so the copy starts without conversations; `orders` loads the sample
    orders into it. `overrides` are environment variables on top of `env(into)`.
    """
    shutil.copytree(data_dir, into, ignore=shutil.ignore_patterns("*.db*", "*.log"))
    if orders:
        load_orders(into)
    with serving(into, env(into) | (overrides or {})) as (url, pid):
        yield url, pid


@contextlib.contextmanager
def chroma_server(path: Path) -> Iterator[str]:
    """`chroma run` over `path`; yields its URL."""
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.is_file():
        pytest.fail(f"{chroma} not found: install the chromadb package (requirements/lock.txt)")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)]

    def ready() -> bool:
        return httpx.get(f"{url}/api/v2/heartbeat", timeout=2).status_code == 200

    with _process(args, path.parent / f"{path.name}.log", ready):
        yield url


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    if not found[-1]:
        pytest.fail(
            f"PostgreSQL's {name} not found (/usr/lib/postgresql/*/bin): install the Debian "
            "package postgresql (apt-get install postgresql)"
        )
    return found[-1]


@contextlib.contextmanager
def postgres_server(timezone: str = "Asia/Shanghai") -> Iterator[str]:
    """A throw-away PostgreSQL cluster; yields the SQLAlchemy URL of its `postgres` database.

    PostgreSQL refuses to run as root, so as root it runs as the `postgres` user (which
    the Debian package creates), in a directory of its own outside pytest's root-only
    temporary tree. The server's time zone is not UTC on purpose: stored times must come
    back as the same instants whatever the session's zone.
    """
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="shopdesk-pg-"))
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            pytest.fail("runuser not found: install the Debian package util-linux")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    data, log = base / "data", base / "server.log"
    port = free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c timezone={timezone} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )

    def run(*args: str) -> None:
        done = subprocess.run(
            [*as_user, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"{args[:2]} failed:\n{done.stdout}{done.stderr}\n{_tail(log)}")

    try:
        run(initdb, "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8", "--no-locale")
        run(pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "120", "-o", options, "start")
        try:
            yield f"postgresql+psycopg://{PG_USER}@127.0.0.1:{port}/postgres"
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def create_database(server_url: str, name: str) -> str:
    """A new empty database on the server of `server_url`; returns its URL."""
    import psycopg

    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def model_server(gguf: Path, alias: str, log: Path, *, n_ctx: int = 4096) -> Iterator[str]:
    """`python -m llama_cpp.server` with `gguf`; yields its OpenAI API root (…/v1).

    `--interrupt_requests False`: by default llama_cpp.server ends a running stream as
    soon as another request arrives, which several app servers would do to each other.
    """
    for module, package in [("llama_cpp", "llama-cpp-python"), ("starlette_context", None)]:
        if importlib.util.find_spec(module) is None:
            pytest.fail(
                f"python -m llama_cpp.server needs {package or module.replace('_', '-')}: "
                "install requirements/lock.txt"
            )
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    args = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--interrupt_requests",
        "False",
    ]

    def ready() -> bool:
        return httpx.get(f"{url}/models", timeout=2).status_code == 200

    with _process(args, log, ready):
        yield url
