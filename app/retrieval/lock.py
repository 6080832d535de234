"""One writer at a time per data dir: the vector store and the BM25 index change together.

`shopdesk ingest`, the documents API and a server's BM25 reload all write the pair;
two of them at once could interleave (one run deleting as "incomplete" a document
the other is half way through writing, two BM25 rebuilds sharing one temporary
file). An exclusive `flock` on a file in the data dir serialises them across
threads and processes. It is not re-entrant: a holder must not take it again
(each `open` is a lock of its own, so the second would wait for ever).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = ".index.lock"


@contextmanager
def index_lock(data_dir: Path) -> Iterator[None]:
    """Hold the data dir's write lock for the block; waits while another writer has it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / LOCK_NAME).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
