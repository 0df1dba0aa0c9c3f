"""The CPU time of each step of a start, in the order `enque serve` takes them, without the
HTTP server: where the cold start (bench/cold_start.py) spends its time.

    .venv/bin/python -m bench.start_steps [--runs 5] [--no-gc] [--compare DIR]

Each run is a new process on an already-migrated SQLite database; the best of the runs is
printed per step. `--no-gc` pauses the garbage collector for the whole run (to see the work
apart from the collections); without it the collector is paused where `enque serve` pauses it.
`--compare DIR` runs the Enque of another source tree in turn with this one. Under
`valgrind --tool=callgrind` a single run (`--runs 1`) gives instruction counts, which do not
depend on the machine's load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

STEPS = (
    "cli and settings",
    "migrations check",
    "uvicorn, FastAPI",
    "enque.app and the core",
    "domain hooks",
    "domain routes",
    "app creation",
    "lifespan start",
)


def run_steps(no_gc: bool) -> dict[str, float]:
    """One start's steps in this process (a fresh one): CPU seconds per step."""
    import gc
    import importlib.util
    import itertools
    import time

    if no_gc:
        gc.disable()
    marks = [time.process_time()]
    import enque.cli

    marks.append(time.process_time())
    from enque.config import get_settings
    from enque.core.migrate import upgrade_sync

    upgrade_sync(get_settings())
    marks.append(time.process_time())
    import fastapi  # noqa: F401
    import uvicorn.config
    import uvicorn.server  # noqa: F401

    marks.append(time.process_time())
    spec = importlib.util.find_spec("enque.app")
    assert spec is not None and spec.origin is not None
    pauses = "def serving_app" in Path(spec.origin).read_text(encoding="utf-8")
    if pauses:
        gc.disable()  # where `enque serve` pauses it: before uvicorn imports the app
    import enque.app
    from enque import domains

    marks.append(time.process_time())
    domains.hook_modules()
    marks.append(time.process_time())
    domains.route_modules()
    marks.append(time.process_time())
    build = getattr(enque.app, "serving_app", enque.app.create_app)
    app = build()
    marks.append(time.process_time())

    import asyncio

    async def lifespan() -> None:
        async with app.router.lifespan_context(app):
            marks.append(time.process_time())

    asyncio.run(lifespan())
    steps = dict(zip(STEPS, (b - a for a, b in itertools.pairwise(marks)), strict=True))
    steps["total (from interpreter start)"] = marks[-1]
    return steps


def main() -> None:
    import argparse

    from bench.harness import ROOT, bench_env, scratch_dir

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-gc", action="store_true")
    parser.add_argument("--compare", type=Path, help="another source tree of Enque to time")
    options = parser.parse_args()
    env = bench_env(scratch_dir())
    trees = {"this tree": ROOT}
    if options.compare:
        trees[options.compare.name] = options.compare.resolve()
    envs = {name: {**env, "PYTHONPATH": str(path)} for name, path in trees.items()}
    for name, path in trees.items():  # migrate first: the runs then only check
        command = [sys.executable, "-m", "enque.cli", "db", "upgrade"]
        subprocess.run(command, env=envs[name], cwd=path, check=True, capture_output=True)
    print(f"load average at launch: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    # -P: the child imports Enque from PYTHONPATH only, and nothing of the benchmarks'
    child = [sys.executable, "-P", __file__, "--child", *(["--no-gc"] if options.no_gc else [])]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(options.runs):
        for name, path in trees.items():
            done = subprocess.run(
                child, env=envs[name], cwd=path, check=True, capture_output=True, text=True
            )
            results[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    for name, runs in results.items():
        print(f"{name}: best of {len(runs)} (CPU seconds)")
        for step in runs[0]:
            print(f"  {step:32} {min(run[step] for run in runs):.3f}")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(run_steps("--no-gc" in sys.argv)))
    else:
        main()
