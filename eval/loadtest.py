"""`python -m eval.loadtest` (`make loadtest`): shoppers for minutes against a real server.

The server (`shopdesk serve`, as in `eval.bench.server`) runs over its own copy
of the ingested shop with the sample orders loaded, the default model and
queue, and the per-client rate limit on. Every client comes from loopback, so
the server trusts X-Forwarded-For (`trust_proxy`) and each simulated shopper
sends its own address there, as a reverse proxy would.

Each shopper asks, reads the answer and thinks for a few seconds before the
next message (after a 429 or 503 it waits the `Retry-After` it was given);
its messages are a realistic mix: FAQ questions, questions the model answers
from the policies, questions the shop cannot answer, orders and product
searches, in English and Chinese, some over the streaming route. One abusive
client sends as fast as it can and ignores `Retry-After`.

Every request ends as 200, 429, 503, 504 (a turn past the model's deadline),
another status, or lost (no HTTP answer). The server's resident memory is read
from /proc every 5 s. The run passes when nothing was lost, every answer was
200, 429, 503 or 504, and memory stayed flat over
the second half; `report.json` and `report.md` in the output folder hold the
numbers. Exit status 1 when it did not pass.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from app.config import load_settings
from eval.bench.load import Result, deliberate, send
from eval.bench.server import own_copy, proc_kib, serving
from eval.bench.stats import summary_ms

SAMPLE = Path("data/sample_shop")
ABUSER = "10.66.6.6"
SAMPLE_EVERY_S = 5.0
# RSS growth allowed over the second half of the load. Measured: +49.7 MiB in 4 min while each
# completion leaked its sampler chain (1.7 MB); +8 to +10 MiB since it is freed.
MAX_GROWTH_MIB = 24.0
# What a shopper asks, by share of messages; every kind has English and Chinese messages.
WEIGHTS = {"faq": 0.40, "generated": 0.25, "unanswerable": 0.10, "order": 0.15, "product": 0.10}
STREAMED = 0.2  # share of generated and unanswerable questions sent to /v1/chat/stream
ORDER_ASKS = (
    "Where is my order {o}?",
    "Where is my order {o}? My email is {e}.",
    "I want to return order {o}, my phone is {p}",
    "我的订单{o}到哪了？",
    "帮我查一下订单{o}，我的邮箱是{e}",
)
PRODUCT_ASKS = (
    "Do you have wireless headphones under 300 yuan?",
    "Can you recommend a kettle?",
    "有没有300元以内的无线耳机",
    "推荐一款降噪耳机",
)


@dataclass(frozen=True)
class LoadPlan:
    clients: int = 50
    duration_s: float = 180.0
    think_s: tuple[float, float] = (5.0, 20.0)
    abusive_gap_s: float = 0.05
    timeout_s: float = 600.0
    seed: int = 0
    rate_limit_per_minute: int = 30  # the server's defaults
    rate_limit_burst: int = 10


@dataclass
class Record:
    client: str
    kind: str
    stream: bool
    at_s: float
    result: Result


@dataclass
class Run:
    records: list[Record] = field(default_factory=list)
    sent: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)  # (seconds, KiB)
    load_s: float = 0.0
    wall_s: float = 0.0


def messages(sample: Path = SAMPLE) -> dict[str, list[str]]:
    """The sample shop's messages by kind (see WEIGHTS)."""

    def rows(path: Path) -> list[dict[str, Any]]:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    orders = rows(sample / "orders.jsonl")
    return {
        "faq": [str(r["question"]) for r in rows(sample / "kb" / "faq.jsonl")],
        "generated": [str(r["question"]) for r in rows(sample / "golden" / "sample_golden.jsonl")],
        "unanswerable": [
            str(r["question"]) for r in rows(sample / "golden" / "sample_unanswerable.jsonl")
        ],
        "order": [
            ask.format(o=o["order_id"], e=o["customer"]["email"], p=o["customer"]["phone"])
            for o in orders
            for ask in ORDER_ASKS
        ],
        "product": list(PRODUCT_ASKS),
    }


def _address(client: int) -> str:
    return f"10.1.{client // 250}.{client % 250 + 1}"


async def _shopper(
    n: int, run: Run, url: str, asks: dict[str, list[str]], plan: LoadPlan, end: float
) -> None:
    rng = random.Random(plan.seed * 100_003 + n)
    headers = {"X-Forwarded-For": _address(n)}
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    t0 = end - plan.duration_s
    await asyncio.sleep(rng.uniform(0, plan.think_s[0]))  # shoppers do not arrive together
    async with httpx.AsyncClient(timeout=plan.timeout_s) as client:
        while time.monotonic() < end:
            kind = rng.choices(kinds, weights)[0]
            stream = kind in ("generated", "unanswerable") and rng.random() < STREAMED
            at = time.monotonic() - t0
            run.sent += 1
            result = await send(client, url, rng.choice(asks[kind]), headers=headers, stream=stream)
            run.records.append(Record(headers["X-Forwarded-For"], kind, stream, at, result))
            pause = rng.uniform(*plan.think_s)
            await asyncio.sleep(max(pause, float(result.retry_after_s or 0)))


async def _abuser(run: Run, url: str, asks: list[str], plan: LoadPlan, end: float) -> None:
    headers = {"X-Forwarded-For": ABUSER}
    t0 = end - plan.duration_s
    async with httpx.AsyncClient(timeout=plan.timeout_s) as client:
        i = 0
        while time.monotonic() < end:
            at = time.monotonic() - t0
            run.sent += 1
            result = await send(client, url, asks[i % len(asks)], headers=headers)
            run.records.append(Record(ABUSER, "abusive", False, at, result))
            i += 1
            await asyncio.sleep(plan.abusive_gap_s)  # Retry-After ignored


async def _sample_rss(pid: int, run: Run, t0: float, stop: asyncio.Event) -> None:
    while True:
        run.rss.append((round(time.monotonic() - t0, 1), proc_kib(pid, "VmRSS")))
        try:
            await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)
            return
        except TimeoutError:
            continue


async def drive(url: str, pid: int, plan: LoadPlan, asks: dict[str, list[str]]) -> Run:
    """Shoppers and the abusive client until `duration_s`; requests under way finish."""
    run = Run()
    t0 = time.monotonic()
    end = t0 + plan.duration_s
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_rss(pid, run, t0, stop))
    await asyncio.gather(
        *(_shopper(n, run, url, asks, plan, end) for n in range(plan.clients)),
        _abuser(run, url, asks["faq"], plan, end),
    )
    run.wall_s = time.monotonic() - t0
    run.load_s = plan.duration_s
    stop.set()
    await sampler
    run.rss.append((round(run.wall_s, 1), proc_kib(pid, "VmRSS")))
    return run


CATEGORIES = ("200", "429", "503", "504", "other", "lost")
"""How a request ended: a status the server gave on purpose, another status, no answer."""


def _cells(counts: dict[str, Any]) -> str:
    """The requests, then one count per category, as table cells."""
    return " | ".join(
        str(x) for x in (sum(counts[k] for k in CATEGORIES), *map(counts.get, CATEGORIES))
    )


def _category(result: Result) -> str:
    if result.status == 0:
        return "lost"
    if deliberate(result):
        return str(result.status)
    return "other"


def _counts(records: Sequence[Record]) -> dict[str, int]:
    counts = Counter(_category(r.result) for r in records)
    return {k: counts.get(k, 0) for k in CATEGORIES}


def memory(rss: Sequence[tuple[float, int]], load_s: float) -> dict[str, float]:
    """First, last and highest RSS, and the change over the second half of the load
    (last minus the first sample at or after half time; slope by least squares)."""
    mib = [(t, kib / 1024) for t, kib in rss]
    second = [(t, m) for t, m in mib if t >= load_s / 2] or mib[-1:]
    slope = 0.0
    if len(second) >= 3:
        ts, ms = np.array([t for t, _ in second]), np.array([m for _, m in second])
        slope = float(np.polyfit(ts, ms, 1)[0]) * 60
    return {
        "samples": float(len(mib)),
        "first_mib": round(mib[0][1], 1),
        "last_mib": round(mib[-1][1], 1),
        "max_mib": round(max(m for _, m in mib), 1),
        "second_half_growth_mib": round(second[-1][1] - second[0][1], 1),
        "second_half_slope_mib_per_min": round(slope, 2),
    }


def summarise(run: Run, plan: LoadPlan, server_env: dict[str, str]) -> dict[str, Any]:
    shoppers = [r for r in run.records if r.client != ABUSER]
    abusive = [r for r in run.records if r.client == ABUSER]
    failed = [r for r in run.records if _category(r.result) in ("other", "lost")]
    per_minute = int(server_env["SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE"])
    burst = int(server_env["SHOPDESK_SERVER__RATE_LIMIT_BURST"])
    by_kind: dict[str, Any] = {}
    for kind in [*WEIGHTS, "streamed"]:
        rows = [r for r in shoppers if (r.stream if kind == "streamed" else r.kind == kind)]
        answered = [r.result.seconds for r in rows if r.result.status == 200]
        by_kind[kind] = {**_counts(rows), "latency": summary_ms(answered)}
    return {
        "plan": {
            "clients": plan.clients,
            "duration_s": plan.duration_s,
            "think_s": list(plan.think_s),
            "abusive_gap_s": plan.abusive_gap_s,
            "timeout_s": plan.timeout_s,
            "seed": plan.seed,
        },
        "server": {
            "env": server_env,
            "note": "every client is on loopback: the server trusts X-Forwarded-For "
            "(trust_proxy) and each simulated client sends its own address",
        },
        "sent": run.sent,
        "recorded": len(run.records),
        "wall_s": round(run.wall_s, 1),
        "shoppers": {
            **_counts(shoppers),
            "answered_share": round(
                sum(r.result.status == 200 for r in shoppers) / max(len(shoppers), 1), 3
            ),
            "latency": summary_ms([r.result.seconds for r in shoppers if r.result.status == 200]),
            "outcomes": dict(
                Counter(r.result.outcome or "?" for r in shoppers if r.result.outcome)
            ),
        },
        "by_kind": by_kind,
        "abusive": {
            **_counts(abusive),
            # its bucket: full at its first request, refilled until its last one started
            "allowed_at_most": int(burst + per_minute / 60 * _span(abusive)),
        },
        "failures": [
            {"client": r.client, "kind": r.kind, "status": r.result.status, "error": r.result.error}
            for r in failed[:20]
        ],
        "memory": memory(run.rss, run.load_s),
        "rss_samples": run.rss,
    }


def _span(records: Sequence[Record]) -> float:
    return records[-1].at_s - records[0].at_s if records else 0.0


def verdict(report: dict[str, Any], max_growth_mib: float) -> list[str]:
    """Why the run failed; empty when it passed."""
    why = []
    if report["sent"] != report["recorded"]:
        why.append(f"{report['sent'] - report['recorded']} requests not accounted for")
    counts = _sum_counts(report)
    if counts["lost"]:
        why.append(f"{counts['lost']} requests lost (no HTTP answer)")
    if counts["other"]:
        why.append(f"{counts['other']} requests answered other than 200/429/503/504")
    if report["abusive"]["200"] > report["abusive"]["allowed_at_most"]:
        why.append("the abusive client got more than its rate limit allows")
    growth = report["memory"]["second_half_growth_mib"]
    if growth > max_growth_mib:
        why.append(f"RSS grew {growth} MiB over the second half (limit {max_growth_mib})")
    return why


def _sum_counts(report: dict[str, Any]) -> dict[str, int]:
    return {k: report["shoppers"][k] + report["abusive"][k] for k in ("lost", "other")}


def markdown(report: dict[str, Any]) -> str:
    s, a, m, p = report["shoppers"], report["abusive"], report["memory"], report["plan"]
    lat = s["latency"]
    lines = [
        f"Load test: {p['clients']} shoppers + 1 abusive client for {p['duration_s']:.0f} s "
        f"(wall {report['wall_s']} s); per-client limit "
        f"{report['server']['env']['SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE']}/min, burst "
        f"{report['server']['env']['SHOPDESK_SERVER__RATE_LIMIT_BURST']}, clients told apart "
        "by X-Forwarded-For (trust_proxy).",
        "",
        "| who | requests | 200 | 429 | 503 | 504 | other | lost | p50 / p95 of 200s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for who, c in [("shoppers", s), ("abusive client", a)]:
        latency = f"{lat['p50_ms'] / 1000:.1f} s / {lat['p95_ms'] / 1000:.1f} s" if c is s else ""
        lines.append(f"| {who} | {_cells(c)} | {latency} |")
    for kind, c in report["by_kind"].items():
        kl = c["latency"]
        lines.append(
            f"| · {kind} | {_cells(c)} | "
            f"{kl['p50_ms'] / 1000:.1f} s / {kl['p95_ms'] / 1000:.1f} s |"
        )
    lines += [
        "",
        f"Sent {report['sent']}, recorded {report['recorded']}. The abusive client was "
        f"allowed {a['200']} (at most {a['allowed_at_most']} by its bucket).",
        f"Server RSS: first {m['first_mib']} MiB, last {m['last_mib']} MiB, max "
        f"{m['max_mib']} MiB; second half {m['second_half_growth_mib']:+} MiB "
        f"({m['second_half_slope_mib_per_min']:+} MiB/min, {m['samples']:.0f} samples).",
    ]
    return "\n".join(lines) + "\n"


def _load_orders(data_dir: Path, env: dict[str, str], orders: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "orders", "load", str(orders)],
        env={**env, "SHOPDESK_DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"orders load failed: {done.stdout}{done.stderr}")


def run(
    shop: Path,
    out: Path,
    plan: LoadPlan,
    *,
    env: dict[str, str] | None = None,
    sample: Path = SAMPLE,
    max_growth_mib: float = MAX_GROWTH_MIB,
) -> dict[str, Any]:
    """Copy the shop, serve it, drive the load, write report.json and report.md."""
    out.mkdir(parents=True, exist_ok=True)
    data_dir = own_copy(shop, out / "shop")
    base = dict(os.environ) if env is None else env
    _load_orders(data_dir, base, sample / "orders.jsonl")
    server_env = {
        "SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE": str(plan.rate_limit_per_minute),
        "SHOPDESK_SERVER__RATE_LIMIT_BURST": str(plan.rate_limit_burst),
        "SHOPDESK_SERVER__TRUST_PROXY": "true",
    }
    with serving(data_dir, {**base, **server_env}) as (url, pid):
        result = asyncio.run(drive(url, pid, plan, messages(sample)))
    report = summarise(result, plan, server_env)
    report["failed_because"] = verdict(report, max_growth_mib)
    (out / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False), "utf-8")
    (out / "report.md").write_text(markdown(report), "utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval.loadtest", description=__doc__)
    ap.add_argument("--clients", type=int, default=LoadPlan.clients)
    ap.add_argument("--duration", type=float, default=LoadPlan.duration_s, help="seconds")
    ap.add_argument(
        "--think", type=float, nargs=2, default=LoadPlan.think_s, metavar=("MIN", "MAX")
    )
    ap.add_argument("--seed", type=int, default=LoadPlan.seed)
    ap.add_argument("--max-growth-mib", type=float, default=MAX_GROWTH_MIB, help="RSS, second half")
    ap.add_argument("--out", type=Path, default=Path("var/loadtest"))
    ap.add_argument("--shop", type=Path, help="ingested data dir (default: SHOPDESK_DATA_DIR)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    plan = LoadPlan(args.clients, args.duration, tuple(args.think), seed=args.seed)
    report = run(
        args.shop or load_settings().data_dir, args.out, plan, max_growth_mib=args.max_growth_mib
    )
    print(markdown(report))
    for reason in report["failed_because"]:
        print(f"FAILED: {reason}")
    print(f"written: {args.out / 'report.json'}, {args.out / 'report.md'}")
    return 1 if report["failed_because"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
