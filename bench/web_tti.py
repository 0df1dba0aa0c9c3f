"""Time to interactive of the web app's inbox on a large workspace, and its asset sizes.

Seeds one workspace with N tickets (bulk inserts, as bench/ticket_list.py), starts the real
server, and opens the inbox in headless Chromium (Debian's package) with the agent signed in.
"Interactive" is the moment the first page of tickets is in the list and the keyboard works
(the app marks `enque:inbox-ready`). Beside it, the ceiling measured in the same run: the
browser's own time for the one API request the first page needs (`GET /v1/tickets`, from the
same page), and a bare navigation to a static file of the app.

    .venv/bin/python bench/web_tti.py                  # SQLite, 100,000 tickets
    .venv/bin/python bench/web_tti.py --db postgres --tickets 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import bench_env, start_enque  # noqa: E402
from bench.ticket_list import _psql, seed  # noqa: E402
from enque.config import Settings  # noqa: E402
from enque.core.migrate import upgrade_sync  # noqa: E402

STATIC = ROOT / "enque" / "web" / "static"

NAVIGATION = "performance.getEntriesByType('navigation')[0].duration"
READY = "performance.getEntriesByName('enque:inbox-ready')[0]?.startTime ?? null"
FIRST_PAGE = """(() => {
  const e = performance.getEntriesByType('resource')
    .find(r => r.name.includes('/v1/tickets?') && r.name.includes('limit=50'));
  return e ? e.responseEnd - e.startTime : null;
})()"""
TRANSFER = """(() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const res = performance.getEntriesByType('resource').filter(r => r.name.includes('/assets/'));
  return {
    document: nav.transferSize, documentBody: nav.encodedBodySize,
    assets: res.reduce((n, r) => n + r.transferSize, 0),
    assetsBody: res.reduce((n, r) => n + r.encodedBodySize, 0),
    assetsDecoded: res.reduce((n, r) => n + r.decodedBodySize, 0),
    files: res.length,
  };
})()"""


def chromium() -> str:
    path = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
    if not Path(path).exists():
        found = shutil.which("chromium")
        if not found:
            raise SystemExit("Chromium is missing: run scripts/install-test-services.sh")
        path = found
    return path


async def wait_ready(page: Any) -> float:
    for _ in range(600):
        value = await page.evaluate(READY)
        if value is not None:
            return float(value)
        await asyncio.sleep(0.05)
    raise RuntimeError("the inbox never became ready")


COUNTED = """[...document.querySelectorAll('[data-count]')]
  .every(e => e.textContent !== '') ? performance.now() : null"""


async def wait_counts(page: Any) -> float:
    """Milliseconds from navigation until every view's count is shown (they load after the
    first page, one `includeTotal` request per view)."""
    for _ in range(1200):
        value = await page.evaluate(COUNTED)
        if value is not None:
            return float(value)
        await asyncio.sleep(0.05)
    raise RuntimeError("the view counts never arrived")


async def measure(url: str, token: str, runs: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    init = f"localStorage.setItem('enque.token', {json.dumps(token)})"
    cold: list[float] = []
    warm: list[float] = []
    api: list[float] = []
    bare: list[float] = []
    counted: list[float] = []
    transfer: dict[str, int] = {}
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            for _ in range(runs):
                context = await browser.new_context(viewport={"width": 1366, "height": 800})
                await context.add_init_script(init)
                page = await context.new_page()
                await page.goto(f"{url}/assets/favicon.svg")
                bare.append(
                    float(
                        await page.evaluate(
                            "performance.getEntriesByType('navigation')[0].duration"
                        )
                    )
                )
                await page.goto(f"{url}/#/inbox/open")
                cold.append(await wait_ready(page))
                first = await page.evaluate(FIRST_PAGE)
                if first is not None:
                    api.append(float(first))
                transfer = await page.evaluate(TRANSFER)
                rows = await page.locator("#ticket-list li.ticket").count()
                assert rows == 50, rows
                counted.append(await wait_counts(page))
                await page.reload()
                warm.append(await wait_ready(page))
                await context.close()
        finally:
            await browser.close()
    return {
        "cold": cold,
        "warm": warm,
        "api": api,
        "bare": bare,
        "counts": counted,
        "transfer": transfer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        pg_name = f"enque_webbench_{os.getpid()}"
        overrides: dict[str, str] = {}
        if args.db == "postgres":
            _psql(f"CREATE DATABASE {pg_name}")
            overrides["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:5432/{pg_name}"
        env = bench_env(data, **overrides)
        server = None
        try:
            settings = Settings(
                _env_file=None,  # type: ignore[call-arg]
                **{k.lower(): v for k, v in env.items() if k.isupper() and k in _SETTINGS_KEYS},
            )
            upgrade_sync(settings)
            token, _, _ = asyncio.run(seed(settings, args.tickets, search=False))
            print(f"\nseeded {args.tickets:,} tickets on {args.db}")
            server = start_enque(env)
            figures = asyncio.run(measure(server.url, token, args.runs))
        finally:
            if server is not None:
                server.stop()
            if args.db == "postgres":
                _psql(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    ceiling = med(figures["api"])
    print(f"\nmedian of {args.runs} runs, headless Chromium, first page of 50 (view: All open)\n")
    print(f"{'measure':48} {'ms':>8} {'÷ ceiling':>10}")
    print(f"{'ceiling: GET /v1/tickets from the page':48} {ceiling:8.1f} {1:10.2f}")
    print(f"{'bare navigation to a static file':48} {med(figures['bare']):8.1f}")
    for label, key in (("cold cache", "cold"), ("warm cache (304s)", "warm")):
        value = med(figures[key])
        print(f"{'inbox interactive, ' + label:48} {value:8.1f} {value / ceiling:10.2f}")
    print(f"{'all 7 view counts shown (after the list)':48} {med(figures['counts']):8.1f}")
    t = figures["transfer"]
    raw = sum(p.stat().st_size for p in STATIC.rglob("*") if p.is_file())
    print(
        f"\nassets on the wire (cold): page {t['document']:,} B, {t['files']} files "
        f"{t['assets']:,} B transferred ({t['assetsBody']:,} B gzipped bodies, "
        f"{t['assetsDecoded']:,} B decoded); whole static folder {raw:,} B uncompressed"
    )


_SETTINGS_KEYS = {
    "ENV",
    "DATA_DIR",
    "DATABASE_URL",
    "STORAGE_URL",
    "SECRET_KEY",
    "ENCRYPTION_KEY",
    "RATE_LIMIT_ENABLED",
    "RATE_LIMIT_READ",
    "RATE_LIMIT_WRITE",
    "RATE_LIMIT_AUTH",
    "SCHEDULER_ENABLED",
    "LOG_LEVEL",
}

if __name__ == "__main__":
    main()
