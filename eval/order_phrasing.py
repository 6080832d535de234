"""How often the model's phrasing of an order status passes the facts check.

    python -m eval.order_phrasing [--orders data/sample_shop/orders.jsonl]
        [--out var/eval-runs/order-phrasing]

For every sample order, in English and Chinese, the order's own customer asks for its
status through the real tools (`ShopTools.handle`, the configured GGUF model). The
model's reply is used only when every number in it is one of the order's facts and the
order and tracking numbers are there (`app.tools.orders.faithful`); otherwise the
template answers. Reported: the share phrased by the model, per language, and the
time per reply. Needs the sample shop ingested and its orders loaded (`make
ingest-sample`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eval.order_phrasing",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--orders", type=Path, default=Path("data/sample_shop/orders.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("var/eval-runs/order-phrasing"))
    args = parser.parse_args(argv)

    from app.config import Settings
    from app.container import build_container, build_tools
    from app.db.engine import database_url, make_engine, upgrade
    from app.tools.base import ToolContext, ToolState

    settings = Settings()
    container = build_container(settings)
    engine = make_engine(database_url(settings.data_dir, settings.db.url))
    upgrade(engine)
    tools = build_tools(container, engine)
    asks = {"en": "Where is order {o}?", "zh": "订单{o}到哪了？"}
    items: list[dict[str, Any]] = []
    for line in args.orders.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        for lang in ("en", "zh"):
            state = ToolState()
            message = asks[lang].format(o=row["order_id"])
            ctx = ToolContext(
                message, lang, "order_status", row["customer"]["customer_id"], state, tools.today()
            )
            started = time.perf_counter()
            reply = tools.handle(ctx)
            seconds = time.perf_counter() - started
            if reply is None or not reply.actions or reply.actions[0]["type"] != "order_status":
                raise SystemExit(f"{row['order_id']}: no order status; are the orders loaded?")
            items.append(
                {
                    "order_id": row["order_id"],
                    "lang": lang,
                    "phrased_by": reply.actions[0]["phrased_by"],
                    "seconds": round(seconds, 2),
                    "text": reply.text,
                }
            )
    engine.dispose()
    report: dict[str, Any] = {"model": container.llm.name, "languages": {}}
    for lang in ("en", "zh"):
        mine = [i for i in items if i["lang"] == lang]
        times = sorted(i["seconds"] for i in mine)
        report["languages"][lang] = {
            "n": len(mine),
            "phrased_by_model": sum(i["phrased_by"] == "model" for i in mine) / len(mine),
            "p50_s": statistics.median(times),
            "max_s": times[-1],
        }
    lines = [
        f"# Order status phrasing ({report['model']})",
        "",
        "| lang | n | phrased by the model (rest: template) | p50 s | max s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {lang} | {v['n']} | {v['phrased_by_model']:.2f} | {v['p50_s']:.2f} | {v['max_s']:.2f} |"
        for lang, v in report["languages"].items()
    ]
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.md").write_text(text, encoding="utf-8")
    (args.out / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    with (args.out / "items.jsonl").open("w", encoding="utf-8") as out:
        for item in items:
            out.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
