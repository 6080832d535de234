"""The sample shop's golden files, split once into a dev half and a test half.

    python -m eval.split            # (re)write the halves next to the full files
    python -m eval.split --check    # exit 1 when the committed halves are not what it writes

Why: a setting tuned on the rows that also grade it reports an optimistic
figure. Every tuned setting is fitted on the dev half (`make eval-dev`,
`python -m eval.fit`); the CI gate (`make eval-smoke`) scores the test half.

How: rows are grouped into strata by (language, answerable, dataset), so each
half keeps the mix of languages, of answerable and unanswerable rows and of
follow-up kinds ("follow-up" / "topic change"). Within a stratum the rows are
sorted by id and shuffled with a generator seeded by `SEED` and the stratum's
name (string seeds are hashed with SHA-512: the same on every machine and
Python run); the first ceil(n / 2) go to dev, the rest to test. Each half
keeps the full file's line order and its lines byte for byte. The full files
stay the source of truth: edit them, then run this again.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections import defaultdict
from pathlib import Path

SEED = "shopdesk-golden-split-v1"
GOLDEN_DIR = Path("data/sample_shop/golden")
SOURCES = ("sample_golden.jsonl", "sample_unanswerable.jsonl", "sample_followups.jsonl")
HALVES = ("dev", "test")


def stratum(row: dict[str, object]) -> str:
    """The group a row is balanced within: language, answerable, dataset (the kind)."""
    return f"{row['language']}|{row.get('answerable', True)}|{row.get('dataset') or ''}"


def split_lines(lines: list[str], seed: str = SEED) -> dict[str, list[str]]:
    """{"dev": [...], "test": [...]}: the non-empty lines, halved within every stratum."""
    rows = [(i, line, json.loads(line)) for i, line in enumerate(lines) if line.strip()]
    strata: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for index, _, row in rows:
        strata[stratum(row)].append((index, str(row["id"])))
    dev: set[int] = set()
    for name, members in sorted(strata.items()):
        ordered = sorted(members, key=lambda m: m[1])
        random.Random(f"{seed}|{name}").shuffle(ordered)
        dev.update(index for index, _ in ordered[: math.ceil(len(ordered) / 2)])
    return {
        "dev": [line for index, line, _ in rows if index in dev],
        "test": [line for index, line, _ in rows if index not in dev],
    }


def half_path(source: Path, half: str) -> Path:
    """`sample_golden.jsonl` → `sample_golden.dev.jsonl`."""
    return source.with_name(f"{source.stem}.{half}{source.suffix}")


def expected(golden_dir: Path = GOLDEN_DIR) -> dict[Path, str]:
    """Every half file's path and the text this split gives it."""
    out: dict[Path, str] = {}
    for name in SOURCES:
        source = golden_dir / name
        halves = split_lines(source.read_text(encoding="utf-8").splitlines())
        for half in HALVES:
            out[half_path(source, half)] = "".join(line + "\n" for line in halves[half])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--golden-dir", type=Path, default=GOLDEN_DIR)
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected(args.golden_dir).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if args.check:
            if current != text:
                stale.append(path)
            continue
        path.write_text(text, encoding="utf-8")
        print(f"{path}: {text.count(chr(10))} rows")
    if stale:
        print("out of date (run python -m eval.split):", *stale, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
