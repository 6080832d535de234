"""The regression gate: a run's summary against minimum (or maximum) values from a measured run.

A thresholds file looks like
    {"overall": {"recall@5": {"min": 0.9}, "false_refusal_rate": {"max": 0.15}},
     "languages": {"zh": {"recall@5": {"min": 0.85}}}}
Every limit is checked: a metric the file names that the run did not measure
(missing, or `null`: answer metrics in a retrieval-only run, a rate over no
rows) is a violation, not a skip, so a gate can never pass by measuring less.
A group the file names that the run lacks is one too, and so is a file that
names no limit at all. A limit is `{"min": x}`, `{"max": x}` or both; keys
starting with `_` (such as `_about`) are notes.

After a deliberate change to the pipeline, move the limits to a new measured run:

    make eval-smoke
    python -m eval.thresholds var/eval-runs/smoke eval/thresholds/sample_shop.json --write

keeps the file's limits (which metrics, which groups) and sets each one item's
worth under the run's value (`remeasure`), with the figures and commit in `_about`.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval.summary import MEAN_METRICS


def check(summary: dict[str, Any], thresholds: dict[str, Any]) -> tuple[list[str], int]:
    """(violations, how many limits were checked)."""
    violations: list[str] = []
    checked = 0
    for scope, spec in thresholds.items():
        if scope.startswith("_"):
            continue
        groups = {"all": summary.get("overall")} if scope == "overall" else summary.get(scope, {})
        entries = {"all": spec} if scope == "overall" else spec
        for group_name, limits in entries.items():
            values = groups.get(group_name)
            if values is None:
                violations.append(f"{scope}/{group_name}: missing from the run")
                continue
            for metric, limit in limits.items():
                if metric.startswith("_"):
                    continue
                checked += 1
                value = values.get(metric)
                if not {"min", "max"} & set(limit):
                    violations.append(f"{scope}/{group_name} {metric}: a limit needs min or max")
                    continue
                if value is None:
                    violations.append(f"{scope}/{group_name} {metric}: not measured by this run")
                    continue
                if "min" in limit and value < limit["min"]:
                    violations.append(f"{scope}/{group_name} {metric} = {value} < {limit['min']}")
                if "max" in limit and value > limit["max"]:
                    violations.append(f"{scope}/{group_name} {metric} = {value} > {limit['max']}")
    if not checked:
        violations.append("no limit in the thresholds file")
    return violations, checked


def check_files(summary_path: Path, thresholds_path: Path) -> tuple[list[str], int]:
    return check(json.loads(summary_path.read_text()), json.loads(thresholds_path.read_text()))


# --- moving the limits to a measured run ---------------------------------------------


def _answered(answerable: bool) -> Callable[[dict[str, Any]], bool]:
    return lambda item: "outcome" in item and bool(item["answerable"]) is answerable


RATES = {  # rate → which items it counts over
    "false_refusal_rate": _answered(True),
    "refusal_rate": _answered(False),
}


def rows_behind(items: list[dict[str, Any]], metric: str) -> int:
    """How many items a summary figure averages over: one of them moves it by 1 / that."""
    ok = [i for i in items if not i.get("error")]
    if metric in RATES:
        return sum(RATES[metric](i) for i in ok)
    if metric in MEAN_METRICS:
        return sum(i.get(metric) is not None for i in ok)
    return 0


def remeasure(
    summary: dict[str, Any], items: list[dict[str, Any]], limits: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The same limits, each moved to one item under (over, for a max) the run's value,
    rounded outward to 0.01 (`failed` and metrics that are not means or rates keep their
    limit); and the measured figures, `scope/group metric = value (n)`, for `_about`."""
    primary = [i for i in items if i.get("system", summary.get("primary")) == summary["primary"]]
    out: dict[str, Any] = {k: v for k, v in limits.items() if k.startswith("_")}
    figures = []
    for scope, spec in limits.items():
        if scope.startswith("_"):
            continue
        entries = {"all": spec} if scope == "overall" else spec
        moved: dict[str, Any] = {}
        for name, group_limits in entries.items():
            values = summary["overall"] if scope == "overall" else summary[scope][name]
            key = {"parts": "part", "languages": "lang"}.get(scope)
            members = [i for i in primary if key is None or i.get(key) == name]
            moved[name] = {}
            for metric, limit in group_limits.items():
                value, n = values.get(metric), rows_behind(members, metric)
                if metric.startswith("_") or value is None or not n:
                    moved[name][metric] = limit
                    continue
                figures.append(f"{scope}/{name} {metric} = {value} (n {n})")
                step = 1 / n
                new = {}
                if "min" in limit:
                    new["min"] = max(0.0, math.floor(round((value - step) * 100, 6)) / 100)
                if "max" in limit:
                    new["max"] = min(1.0, math.ceil(round((value + step) * 100, 6)) / 100)
                moved[name][metric] = new
        out[scope] = moved["all"] if scope == "overall" else moved
    return out, figures


def dumps(limits: dict[str, Any]) -> str:
    """The file's layout: one line per group's metric, so a diff shows which limit moved."""

    def group(limits: dict[str, Any], indent: str) -> list[str]:
        body = [f"{indent}  {json.dumps(k)}: {json.dumps(v)}" for k, v in limits.items()]
        return ["{", ",\n".join(body), indent + "}"]

    lines = []
    for scope, spec in limits.items():
        if scope.startswith("_") or scope == "overall":
            value = json.dumps(spec, ensure_ascii=False) if scope.startswith("_") else None
            text = value or "\n".join(group(spec, "  "))
        else:
            inner = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in spec.items()]
            text = "{\n" + ",\n".join(inner) + "\n  }"
        lines.append(f"  {json.dumps(scope)}: {text}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="move a thresholds file to a measured run")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("thresholds", type=Path)
    parser.add_argument("--write", action="store_true", help="rewrite the file (else print)")
    parser.add_argument("--note", help="a sentence to add to _about (what was odd about the run)")
    args = parser.parse_args(argv)
    summary = json.loads((args.run_dir / "summary.json").read_text())
    items = [
        json.loads(line)
        for line in (args.run_dir / "items.jsonl").read_text().splitlines()
        if line.strip()
    ]
    limits, figures = remeasure(summary, items, json.loads(args.thresholds.read_text()))
    meta = summary["meta"]
    limits["_about"] = (
        f"CI gate for the sample shop's test half (make eval-smoke). Measured on "
        f"{summary['primary']}, commit {meta['commit']}, {meta['started']}, "
        f"{meta['rows']} rows of {', '.join(meta['golden'])}, "
        f"{summary['overall']['failed']} failed: {'; '.join(figures)}. Each limit sits one "
        "item under the measured value (1/n of the n rows the figure averages: with the 20 "
        "answerable and 10 unanswerable rows of the test half, 0.05 overall and 0.1 per "
        "language or for the unanswerable part), rounded outward to 0.01; no failed item is "
        "allowed. Move them to a new run: python -m eval.thresholds var/eval-runs/smoke "
        "eval/thresholds/sample_shop.json --write." + (f" {args.note}" if args.note else "")
    )
    text = dumps(limits)
    if args.write:
        args.thresholds.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
