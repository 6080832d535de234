"""`shopdesk eval`: run an evaluation, compare two runs, gate a run, check the grounding judge.

    shopdesk eval GOLDEN.jsonl [GOLDEN2.jsonl…] [--as-unanswerable OTHER.jsonl] --kb KB_DIR
        --out RUN_DIR
        [--data-dir DIR] [--limit N] [--per-part N] [--url URL] [--retrieval-only]
        [--baselines dense,bm25,hybrid-no-gate|none] [--system NAME:key=value,…]
        [--gate THRESHOLDS.json]
    shopdesk eval compare RUN_A RUN_B
    shopdesk eval gate RUN_DIR THRESHOLDS.json
    shopdesk eval grounding

Exit codes: 0 fine, 1 bad input (a golden row, a path), 3 the gate failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.config import Settings
from eval.golden import GoldenError, foreign, load_golden

GATE_FAILED = 3


def _systems(specs: list[str]) -> dict[str, dict[str, Any]]:
    """`convex03:retrieval.bm25_weight=0.3,retrieval.fusion=convex` → {name: overrides}."""
    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        name, _, pairs = spec.partition(":")
        overrides: dict[str, Any] = {}
        for pair in filter(None, pairs.split(",")):
            key, _, raw = pair.partition("=")
            try:
                overrides[key] = json.loads(raw)
            except json.JSONDecodeError:
                overrides[key] = raw
        out[name] = overrides
    return out


def _run(argv: list[str]) -> int:
    from eval import report, runner, thresholds

    parser = argparse.ArgumentParser(
        prog="shopdesk eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("golden", type=Path, nargs="*", default=[], help="golden JSONL file(s)")
    parser.add_argument(
        "--as-unanswerable",
        type=Path,
        action="append",
        default=[],
        help="golden file(s) whose questions this knowledge base lacks: all must be refused",
    )
    parser.add_argument(
        "--kb",
        type=Path,
        action="append",
        default=[],
        help="knowledge base to ingest first (idempotent); repeatable",
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument(
        "--data-dir", type=Path, help="store to use (default: var/eval/<first kb dir name>)"
    )
    parser.add_argument("--limit", type=int, help="only the first N rows")
    parser.add_argument("--per-part", type=int, help="only the first N rows of every part")
    parser.add_argument("--url", help="score a running server instead of the in-process pipeline")
    parser.add_argument(
        "--retrieval-only",
        action="store_true",
        help="retrieval and gate metrics only: no generation",
    )
    parser.add_argument(
        "--baselines",
        default="dense,bm25,hybrid-no-gate",
        help="baselines beside the hybrid pipeline, or 'none'",
    )
    parser.add_argument(
        "--system", action="append", default=[], help="an extra system: NAME:dotted.setting=value,…"
    )
    parser.add_argument("--gate", type=Path, help="thresholds file; exit 3 when a metric drops")
    args = parser.parse_args(argv)

    try:
        golden = [(path, load_golden(path)) for path in args.golden]
        golden += [(path, foreign(load_golden(path))) for path in args.as_unanswerable]
    except (GoldenError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not golden:
        parser.error("give at least one golden file")
    baselines = [] if args.baselines == "none" else args.baselines.split(",")
    unknown = [b for b in baselines if b not in runner.BASELINES]
    if unknown:
        print(
            f"error: unknown baseline(s) {unknown}; known: {list(runner.BASELINES)}",
            file=sys.stderr,
        )
        return 1
    for kb in args.kb:
        if not kb.exists():
            print(f"error: knowledge base {kb} does not exist", file=sys.stderr)
            return 1
    data_dir = args.data_dir or (Path("var/eval") / args.kb[0].resolve().name if args.kb else None)
    config = runner.RunConfig(
        golden=golden,
        out=args.out,
        kb=args.kb,
        data_dir=data_dir,
        url=args.url,
        retrieval_only=args.retrieval_only,
        limit=args.limit,
        per_part=args.per_part,
        baselines=[b for b in baselines if b != runner.PRIMARY],
        extra_systems=_systems(args.system),
    )
    summary = runner.run(config, Settings())
    path = report.write(args.out)
    print(path.read_text())
    print(f"report: {path}")
    if args.gate:
        violations, checked = thresholds.check(summary, json.loads(args.gate.read_text()))
        return _verdict(violations, checked)
    return 0


def _verdict(violations: list[str], checked: int) -> int:
    if violations:
        print("GATE FAILED:\n  " + "\n  ".join(violations), file=sys.stderr)
        return GATE_FAILED
    print(f"gate passed ({checked} limits)")
    return 0


def _compare(argv: list[str]) -> int:
    from eval.compare import compare

    parser = argparse.ArgumentParser(prog="shopdesk eval compare")
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    args = parser.parse_args(argv)
    print(compare(args.run_a, args.run_b))
    return 0


def _gate(argv: list[str]) -> int:
    from eval.thresholds import check_files

    parser = argparse.ArgumentParser(prog="shopdesk eval gate")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("thresholds", type=Path)
    args = parser.parse_args(argv)
    return _verdict(*check_files(args.run_dir / "summary.json", args.thresholds))


def _grounding(argv: list[str]) -> int:
    from app.container import build_embedder
    from eval.grounding import GroundingJudge, calibrate, load_checked

    argparse.ArgumentParser(
        prog="shopdesk eval grounding",
        description="the grounding judge against the hand-checked sample",
    ).parse_args(argv)
    result = calibrate(GroundingJudge(build_embedder(Settings())), load_checked())
    print(json.dumps(result, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"compare": _compare, "gate": _gate, "grounding": _grounding}
    if argv and argv[0] in commands:
        return commands[argv[0]](argv[1:])
    return _run(argv)


if __name__ == "__main__":
    raise SystemExit(main())
