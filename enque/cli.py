"""The `enque` command line. Each command calls service functions, never routes."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from enque.config import Settings, get_settings

if TYPE_CHECKING:
    from enque.core.runtime import Runtime

T = TypeVar("T")


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic's ValidationError names each bad variable
        raise click.ClickException(f"invalid configuration:\n{exc}") from exc


def _refuse_insecure(settings: Settings, workers: int = 1) -> None:
    problems = settings.production_problems() if settings.is_production else []
    if settings.is_production and settings.is_sqlite and workers > 1:
        problems.append("several workers need PostgreSQL: set DATABASE_URL=postgresql://…")
    if settings.is_production and workers > 1 and not settings.redis_url:
        problems.append("several workers need Redis: set REDIS_URL=redis://…")
    if problems:
        raise click.ClickException(
            "refusing to start with ENV=production:\n  - " + "\n  - ".join(problems)
        )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Enque help desk. Configuration comes from the environment (see docs/configuration)."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
@click.option("--no-demo", is_flag=True, help="Do not create the demo workspace on first run.")
def serve(host: str, port: int, workers: int, no_demo: bool) -> None:
    """Run the HTTP server (migrations are applied first).

    Example: enque serve --host 0.0.0.0 --port 8000 --workers 4
    """
    import uvicorn

    from enque.core.migrate import upgrade_sync

    settings = _settings()
    _refuse_insecure(settings, workers)
    if settings.is_sqlite and workers > 1:
        click.echo("warning: SQLite with several workers; use PostgreSQL to scale out", err=True)
    upgrade_sync(settings)
    if workers > 1:
        _share_metrics(settings)
    if not no_demo and not settings.is_production:
        from enque.demo import ensure_demo_workspace

        login = asyncio.run(ensure_demo_workspace(settings))
        if login is not None:
            click.echo(
                f"\nDemo workspace created. Sign in at {_sign_in_url(host, port)} with\n"
                f"  email:    {login[0]}\n  password: {login[1]}\n"
            )
    if workers == 1:  # the app is built in this process: see enque.app.serving_app
        gc.disable()
    uvicorn.run(
        "enque.app:serving_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=20,
        ws_ping_interval=None,  # the real-time hub pings at the application level
        # events are small JSON; per-socket zlib contexts would double the memory of an idle
        # socket and the CPU of a fan-out (bench/RESULTS-realtime.md)
        ws_per_message_deflate=False,
    )


def _sign_in_url(host: str, port: int) -> str:
    """Where this server answers: PUBLIC_URL when set, else the address it listens on."""
    if os.environ.get("PUBLIC_URL"):
        return _settings().public_url
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    return f"http://{shown}:{port}"


def _share_metrics(settings: Settings) -> None:
    """Give the workers one folder for their metrics, emptied of a previous run's files."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    path = Path(folder) if folder else settings.data_dir / "metrics"
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path.resolve())


@main.command()
def worker() -> None:
    """Run only the scheduler and its background jobs (no HTTP server).

    Start as many as you like, on one machine or several sharing the database: each job tick
    runs once. Apply migrations first (`enque serve` or `enque db upgrade`).

    Example: enque worker
    """
    settings = _settings()
    _refuse_insecure(settings)
    asyncio.run(_run_worker(settings.model_copy(update={"scheduler_enabled": True})))


async def _run_worker(settings: Settings) -> None:
    import signal

    from enque.app import serving_app

    app = serving_app(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with app.router.lifespan_context(app):
        click.echo(f"worker {os.getpid()} running the scheduler", err=True)
        await stop.wait()


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations up to REVISION (default: head).

    Example: enque db upgrade
    """
    from enque.core.migrate import upgrade_sync

    upgrade_sync(_settings(), revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION (e.g. `base`).

    Example: enque db downgrade 0001
    """
    from enque.core.migrate import downgrade_sync

    downgrade_sync(_settings(), revision)
    click.echo(f"database at {revision}")


@main.command("create-admin")
@click.option("--email", required=True, help="The admin's sign-in email.")
@click.option("--password", help="Prompted (hidden, twice) when not given.")
@click.option("--display-name", help="Shown to other agents (default: the email's name part).")
@click.option("--workspace-name", help="Create a new workspace with this name…")
@click.option("--subdomain", help="…and this subdomain (lowercase letters, digits, dashes).")
@click.option("--workspace-id", help="Or make the agent an admin of this existing workspace.")
def create_admin(
    email: str,
    password: str | None,
    display_name: str | None,
    workspace_name: str | None,
    subdomain: str | None,
    workspace_id: str | None,
) -> None:
    """Create an admin: a new workspace with its first admin, or an admin of an existing one.

    \b
    Examples:
      enque create-admin --email ada@example.com --workspace-name Acme --subdomain acme
      enque create-admin --email bob@example.com --workspace-id 0190f3c2-…
    """
    from enque.core.migrate import upgrade_sync

    new_workspace = workspace_name is not None or subdomain is not None
    if new_workspace == (workspace_id is not None):
        raise click.UsageError("give either --workspace-name and --subdomain, or --workspace-id")
    if new_workspace and not (workspace_name and subdomain):
        raise click.UsageError("a new workspace needs both --workspace-name and --subdomain")
    email, password, name = _admin_inputs(email, password, display_name, subdomain)
    settings = _settings()
    upgrade_sync(settings)
    created = asyncio.run(
        _create_admin(settings, email, password, name, workspace_name, subdomain, workspace_id)
    )
    click.echo(f"admin {email} in workspace {created}")


def _admin_inputs(
    email: str, password: str | None, display_name: str | None, subdomain: str | None
) -> tuple[str, str, str]:
    """Validate the inputs as the API does; prompt for the password if absent."""
    from pydantic import TypeAdapter, ValidationError

    from enque.auth.schemas import Subdomain
    from enque.core.api import Email, Password

    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    checks: list[tuple[str, Any, Any]] = [("email", Email, email), ("password", Password, password)]
    if subdomain is not None:
        checks.append(("subdomain", Subdomain, subdomain))
    for name, kind, value in checks:
        try:
            TypeAdapter(kind).validate_python(value)
        except ValidationError as exc:
            raise click.BadParameter(exc.errors()[0]["msg"], param_hint=f"--{name}") from exc
    email = TypeAdapter(Email).validate_python(email)
    return email, password, display_name or email.split("@", 1)[0]


async def _create_admin(
    settings: Settings,
    email: str,
    password: str,
    display_name: str,
    workspace_name: str | None,
    subdomain: str | None,
    workspace_id: str | None,
) -> str:
    """Run the service function; API errors become command-line errors."""
    from enque.agents.service import add_admin
    from enque.auth.service import create_workspace_with_admin
    from enque.core.errors import ApiError
    from enque.core.runtime import Runtime

    runtime = Runtime.build(settings)
    try:
        async with runtime.db.session() as session:
            if workspace_id is not None:
                await add_admin(
                    session,
                    workspace_id=workspace_id,
                    email=email,
                    password=password,
                    display_name=display_name,
                )
                return workspace_id
            assert workspace_name is not None and subdomain is not None
            _, workspace = await create_workspace_with_admin(
                session,
                email=email,
                password=password,
                display_name=display_name,
                workspace_name=workspace_name,
                subdomain=subdomain,
            )
            return workspace.id
    except ApiError as exc:
        raise click.ClickException(exc.message) from exc
    finally:
        await runtime.close()


@main.command("seed-demo")
@click.option("--tickets", default=1000, show_default=True, type=click.IntRange(0, 10_000_000))
@click.option(
    "--comments-per-ticket", default=5.0, show_default=True, type=click.FloatRange(0, 100)
)
@click.option("--agents", default=10, show_default=True, type=click.IntRange(1, 1000))
@click.option(
    "--workspace",
    "subdomain",
    default="demo",
    show_default=True,
    help="Subdomain of the workspace to fill (the demo one is created if absent).",
)
@click.option("--no-search", is_flag=True, help="Skip building search documents (faster).")
@click.option("--seed", default=42, show_default=True, type=int)
def seed_demo(
    tickets: int,
    comments_per_ticket: float,
    agents: int,
    subdomain: str,
    no_search: bool,
    seed: int,
) -> None:
    """Fill a workspace with realistic demo data (agents, teams, companies, customers, tickets,
    threads). Refused when ENV=production.

    Example: enque seed-demo --tickets 100000
    """
    import time

    from sqlalchemy import select

    from enque.core.migrate import upgrade_sync
    from enque.core.runtime import Runtime
    from enque.demo import ensure_demo_workspace
    from enque.seeding import seed_workspace
    from enque.workspaces.models import Workspace

    settings = _settings()
    if settings.is_production:
        raise click.ClickException("seed-demo does not run with ENV=production")
    upgrade_sync(settings)
    if subdomain == "demo":
        login = asyncio.run(ensure_demo_workspace(settings))
        if login is not None:
            click.echo(f"Demo workspace created; sign in with {login[0]} / {login[1]}")

    async def run() -> Any:
        runtime = Runtime.build(settings)
        try:
            async with runtime.db.session() as session:
                workspace_id = await session.scalar(
                    select(Workspace.id).where(
                        Workspace.subdomain == subdomain, Workspace.deleted_at.is_(None)
                    )
                )
            if workspace_id is None:
                raise click.ClickException(f"no workspace with the subdomain {subdomain!r}")
            return await seed_workspace(
                runtime,
                workspace_id,
                tickets=tickets,
                comments_per_ticket=comments_per_ticket,
                agents=agents,
                search=not no_search,
                seed=seed,
                progress=lambda n: click.echo(f"  {n:>9,} tickets", err=True),
            )
        finally:
            await runtime.close()

    began = time.perf_counter()
    report = asyncio.run(run())
    elapsed = time.perf_counter() - began
    click.echo(
        f"Seeded workspace {subdomain}: {report.tickets:,} tickets, {report.comments:,} comments, "
        f"{report.customers:,} customers, {report.companies:,} companies in {elapsed:.1f} s"
    )


@main.command()
def check() -> None:
    """Report the configuration and whether every dependency answers (exit 1 if one fails).

    Example: DATABASE_URL=postgresql://enque@db/enque enque check
    """
    from enque.app import runtime_probes
    from enque.core.runtime import Runtime

    settings = _settings()
    problems = settings.production_problems() if settings.is_production else []

    async def probe() -> dict[str, str]:
        runtime = Runtime.build(settings)
        results: dict[str, str] = {}
        try:
            for name, fn in runtime_probes(runtime).items():
                try:
                    await asyncio.wait_for(fn(), 10)
                    results[name] = "ok"
                except Exception as exc:
                    results[name] = f"FAILED ({exc.__class__.__name__}: {exc})"
        finally:
            await runtime.close()
        return results

    results = asyncio.run(probe())
    click.echo(f"env:      {settings.env}")
    click.echo(f"database: {_redact(settings.database_url)}")
    click.echo(f"redis:    {_redact(settings.redis_url) if settings.redis_url else 'in-process'}")
    click.echo(f"storage:  {_redact(settings.storage_url)}")
    for name, state in results.items():
        click.echo(f"{name + ':':<10}{state}")
    for problem in problems:
        click.echo(f"config:   {problem}")
    if problems or any(state != "ok" for state in results.values()):
        sys.exit(1)


@main.group()
def migrate() -> None:
    """Move data in from other systems."""


@migrate.command("legacy")
@click.option(
    "--from",
    "source",
    required=True,
    metavar="URL",
    help="The old database: mysql://user:password@host:3306/database",
)
@click.option(
    "--storage-from",
    "--files",
    "storage_from",
    metavar="URL",
    help="The old files: s3://bucket?region=…&endpoint=… or file:///copy",
)
@click.option("--to", "target", metavar="URL", help="Target database (default: DATABASE_URL).")
@click.option("--storage-to", metavar="URL", help="Target storage (default: STORAGE_URL).")
@click.option(
    "--legacy-encryption-key",
    envvar="LEGACY_ENCRYPTION_KEY",
    metavar="SECRET",
    help="The old system's ENCRYPTION_KEY (or env LEGACY_ENCRYPTION_KEY).",
)
@click.option("--dry-run", is_flag=True, help="Plan only: write nothing to the target.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run (the default: every run continues from its checkpoints).",
)
@click.option("--verify-only", is_flag=True, help="Compare source and target; load nothing.")
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(1, 50_000))
@click.option(
    "--since",
    metavar="WHEN",
    help="Only rows changed at or after WHEN (Unix seconds or ISO date/time).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the full report as JSON to this file.",
)
def migrate_legacy(
    source: str,
    storage_from: str | None,
    target: str | None,
    storage_to: str | None,
    legacy_encryption_key: str | None,
    dry_run: bool,
    resume: bool,
    verify_only: bool,
    batch_size: int,
    since: str | None,
    report_path: Path | None,
) -> None:
    """Migrate a live old-Enque database and its files.

    Plan: compares the source schema with the known legacy schema, counts the rows of every
    table (and, with --since, those changed since then) and the references to rows that no
    longer exist, checks that the legacy secrets decrypt with --legacy-encryption-key and
    that --storage-from answers. Load (not with --dry-run or --verify-only): the target
    schema is brought up to date, then every table is copied in batches, continuing from the
    checkpoints of an interrupted run. Verify: every row and file compared with the source.
    Prints a summary; exits non-zero when anything is missing or different.

    Example: enque migrate legacy --from mysql://enque:pw@10.0.0.5/enque --report plan.json
    """
    from asyncmy.errors import OperationalError

    from enque.migrate.command import LegacyOptions, parse_since, run_legacy

    del resume  # every run resumes from its checkpoints
    try:
        target_url = target or _settings().database_url
        storage_to_url = storage_to or _settings().storage_url
        options = LegacyOptions(
            source_url=source,
            storage_from=storage_from,
            target=_redact(target_url),
            storage_to=_redact(storage_to_url),
            target_url=target_url,
            storage_to_url=storage_to_url,
            verify_only=verify_only,
            batch_size=batch_size,
            legacy_key=legacy_encryption_key,
            dry_run=dry_run,
            since=parse_since(since) if since else None,
            report_path=report_path,
        )
        report = asyncio.run(run_legacy(options))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    except (OSError, OperationalError) as exc:
        raise click.ClickException(f"cannot read the source: {exc}") from exc
    click.echo(report.summary())
    sys.exit(report.exit_code)


@main.command("rotate-encryption-key")
@click.option("--batch", default=200, show_default=True, help="Rows per transaction.")
def rotate_encryption_key(batch: int) -> None:
    """Re-encrypt every stored secret with the current ENCRYPTION_KEY.

    Set the new key in ENCRYPTION_KEY and the previous one(s) in ENCRYPTION_KEYS_OLD
    (comma-separated), then run it; safe to run again. Example:

      ENCRYPTION_KEY=<new> ENCRYPTION_KEYS_OLD=<old> enque rotate-encryption-key
    """
    from enque import domains
    from enque.core.crypto import DecryptionError
    from enque.core.runtime import Runtime
    from enque.core.secrets import RotationReport, rotate_secrets

    settings = _settings()
    domains.load_models()

    async def run() -> dict[str, RotationReport]:
        runtime = Runtime.build(settings)
        try:
            return await rotate_secrets(runtime.db, runtime.cipher, batch)
        finally:
            await runtime.close()

    try:
        reports = asyncio.run(run())
    except DecryptionError as exc:
        raise click.ClickException(
            f"{exc}: add the key it was encrypted with to ENCRYPTION_KEYS_OLD"
        ) from exc
    for name, report in reports.items():
        click.echo(f"{name}: {report.rotated} re-encrypted, {report.checked} checked")


def _redact(url: Any) -> str:
    """Hide the password part of a URL."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(str(url))
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return str(url)


@main.command("sync-emails")
@click.option("--workspace-id", help="Only this workspace's mailboxes (default: all).")
def sync_emails(workspace_id: str | None) -> None:
    """Fetch new mail of every active mailbox into tickets now (what the scheduler runs).

    Safe beside running servers: one sync per mailbox at a time (busy ones are skipped).
    Example:

      enque sync-emails --workspace-id 01a2...
    """
    from enque.mailboxes.sync import sync_all

    reports = _on_runtime(lambda runtime: sync_all(runtime, workspace_id=workspace_id))
    for report in reports:
        out = report.as_dict()
        line = ", ".join(f"{k} {out[k]}" for k in ("fetched", "created", "commented", "ignored"))
        click.echo(
            f"{report.mailbox_id}: {line}" + (f"; error: {report.error}" if report.error else "")
        )


def _on_runtime(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `work` on a started runtime with every domain's hooks, as the server has them;
    mail it queued is sent before the runtime closes."""
    from enque import domains
    from enque.core.runtime import Runtime

    settings = _settings()
    domains.load_models()

    async def run() -> T:
        runtime = Runtime.build(settings)
        try:
            for module in domains.hook_modules():
                if hasattr(module, "setup"):
                    module.setup(runtime)
            await runtime.start()
            return await work(runtime)
        finally:
            outbox = runtime.services.get("email_outbox")
            if outbox is not None:
                await outbox.drain()
            await runtime.close()

    return asyncio.run(run())


@main.group("email")
def email_group() -> None:
    """Email channel commands. Example:

    enque email retry --workspace-id 01a2...
    """


@email_group.command("retry")
@click.option("--workspace-id", help="Only this workspace's failed messages (default: all).")
@click.option("--mailbox-id", help="Only this mailbox's failed messages.")
def email_retry(workspace_id: str | None, mailbox_id: str | None) -> None:
    """Process again the received messages that failed (shown as failed on their mailbox).

    Run it once the cause is fixed. Each one is read from the raw copy kept when it failed,
    and becomes its ticket or comment exactly once; one that fails again keeps the new error.
    Example:

      enque email retry --mailbox-id 01a2...
    """
    from enque.mailboxes.retry import retry_failed

    done = _on_runtime(
        lambda runtime: retry_failed(runtime, workspace_id=workspace_id, mailbox_id=mailbox_id)
    )
    for item in done:
        reason = f" ({item.reason})" if item.reason else ""
        click.echo(f"{item.ledger_id}: {item.outcome}{reason}")
    if not done:
        click.echo("no failed messages")


if __name__ == "__main__":
    main()
