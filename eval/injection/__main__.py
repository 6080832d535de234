"""`python -m eval.injection [--url URL] --out DIR`: the injection corpus, with a report.

Without `--url` it builds its own shop: a copy of the ingested sample shop
(`SHOPDESK_DATA_DIR`, default var/shop) plus the hostile documents of
`eval/injection/kb`, served by a real server with the configured model.
Exit status 1 when anything reached the client.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from eval.bench.server import serving
from eval.injection.run import KB, markdown, run, summary

SECRET = "injection-eval-token-secret"


def hostile_shop(source: Path, target: Path) -> Path:
    """A copy of `source` with the hostile documents ingested into it."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.log"))
    done = subprocess.run(
        [sys.executable, "-m", "app", "ingest", str(KB)],
        env={**os.environ, "SHOPDESK_DATA_DIR": str(target)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ingest of {KB} failed: {done.stdout}{done.stderr}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a running server (its shop must hold eval/injection/kb)")
    parser.add_argument(
        "--token-secret", default=os.environ.get("SHOPDESK_TOOLS__CUSTOMER_TOKEN_SECRET")
    )
    parser.add_argument("--out", type=Path, default=Path("var/eval/injection"))
    args = parser.parse_args()

    if args.url:
        outcomes = run(args.url, args.token_secret)
    else:
        source = Path(os.environ.get("SHOPDESK_DATA_DIR", "var/shop"))
        with tempfile.TemporaryDirectory() as tmp:
            shop = hostile_shop(source, Path(tmp) / "shop")
            # One client asks all the cases: the per-client chat rate limit is off.
            env = {
                "SHOPDESK_TOOLS__CUSTOMER_TOKEN_SECRET": SECRET,
                "SHOPDESK_SERVER__RATE_LIMIT_PER_MINUTE": "0",
            }
            with serving(shop, env) as (url, _):
                outcomes = run(url, SECRET)
    result = summary(outcomes)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "injection.json").write_text(
        json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    table = markdown(result)
    (args.out / "injection.md").write_text(table, encoding="utf-8")
    print(table)
    return 1 if result["parts"]["all"].get("reached_client", 0) else 0


if __name__ == "__main__":
    sys.exit(main())
