"""The regression gate: a run's summary against minimum (or maximum) values from a measured run.

A thresholds file looks like
    {"overall": {"recall@5": {"min": 0.9}, "false_refusal_rate": {"max": 0.15}},
     "languages": {"zh": {"recall@5": {"min": 0.85}}}}
A metric the run did not measure (answer metrics in a retrieval-only run) is
skipped, but a gate that checked nothing fails: it must not pass by accident.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def check(summary: dict[str, Any], thresholds: dict[str, Any]) -> tuple[list[str], int]:
    """(violations, how many limits were checked)."""
    violations: list[str] = []
    checked = 0
    for scope, spec in thresholds.items():
        if scope.startswith("_"):
            continue
        groups = {"all": summary["overall"]} if scope == "overall" else summary.get(scope, {})
        entries = {"all": spec} if scope == "overall" else spec
        for group_name, limits in entries.items():
            values = groups.get(group_name)
            if values is None:
                violations.append(f"{scope}/{group_name}: missing from the run")
                continue
            for metric, limit in limits.items():
                value = values.get(metric)
                if value is None:
                    continue
                checked += 1
                if "min" in limit and value < limit["min"]:
                    violations.append(f"{scope}/{group_name} {metric} = {value} < {limit['min']}")
                if "max" in limit and value > limit["max"]:
                    violations.append(f"{scope}/{group_name} {metric} = {value} > {limit['max']}")
    if not checked:
        violations.append("no threshold applied to this run")
    return violations, checked


def check_files(summary_path: Path, thresholds_path: Path) -> tuple[list[str], int]:
    return check(json.loads(summary_path.read_text()), json.loads(thresholds_path.read_text()))
