"""The inbox, a ticket and its thread cost a constant number of queries, whatever they hold."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from enque.core.runtime import Runtime
from tests.support.api import Tenant, data
from tests.support.helpdesk import add_agent, add_team, new_ticket


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """The queries sent while the block runs (on every engine of the runtime), without
    transaction control statements and the scheduler's own bookkeeping (a background job
    of the same process may renew its lease meanwhile)."""
    seen: list[str] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split(None, 1)[0].upper() in ("BEGIN", "COMMIT", "ROLLBACK"):
            return
        if "job_leases" in statement or "job_runs" in statement:
            return
        seen.append(statement)

    engines = {
        id(e.sync_engine): e.sync_engine for e in (runtime.db.engine, runtime.db.write_engine)
    }
    for engine in engines.values():
        event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        for engine in engines.values():
            event.remove(engine, "before_cursor_execute", listener)


async def test_list_is_constant_and_never_loads_bodies(tenant: Tenant, app_runtime: Runtime):
    agent = await add_agent(app_runtime, tenant)
    team = await add_team(app_runtime, tenant)
    category = data(await tenant.post("/v1/categories", json={"name": "Sales"}), 201)
    for _ in range(2):
        await new_ticket(
            tenant, teamId=team, assigneeId=agent.agent_id, tags=["a"], categoryId=category["id"]
        )
    params = {"tag": "a", "q": "burning"}
    with statements(app_runtime) as small:
        assert len(data(await tenant.get("/v1/tickets", params=params))) == 2
    for _ in range(10):
        await new_ticket(
            tenant,
            teamId=team,
            assigneeId=agent.agent_id,
            tags=["a", "b"],
            categoryId=category["id"],
        )
    with statements(app_runtime) as large:
        page = data(await tenant.get("/v1/tickets", params=params))
        assert len(page) == 12 and all(t["team"]["id"] == team for t in page)
    # the token check and the page; on SQLite also the capped counts that pick the plans of
    # the tag and the search filters
    assert len(small) == len(large) <= 4
    assert not any("ticket_bodies" in s or "FROM comments" in s for s in large)


async def test_detail_is_constant(tenant: Tenant, app_runtime: Runtime):
    agent = await add_agent(app_runtime, tenant)
    team = await add_team(app_runtime, tenant)
    bare = await new_ticket(tenant)
    full = await new_ticket(tenant, teamId=team, assigneeId=agent.agent_id, tags=["x"])
    for i in range(4):
        data(await tenant.post(f"/v1/tickets/{full['id']}/notes", json={"content": f"n{i}"}), 201)
        data(await tenant.post(f"/v1/tickets/{full['id']}/reply", json={"content": f"r{i}"}), 201)
    with statements(app_runtime) as small:
        data(await tenant.get(f"/v1/tickets/{bare['id']}"))
    with statements(app_runtime) as large:
        detail = data(await tenant.get(f"/v1/tickets/{full['id']}"))
    assert detail["counts"] == {"comments": 8, "replies": 4, "notes": 4, "customerMessages": 0}
    # the token check, the ticket, the comment counts and the files of the first message
    assert len(small) == len(large) <= 4


async def test_thread_is_constant(tenant: Tenant, app_runtime: Runtime):
    ticket = await new_ticket(tenant)
    path = f"/v1/tickets/{ticket['id']}"
    data(await tenant.post(f"{path}/notes", json={"content": "first"}), 201)
    with statements(app_runtime) as small:
        assert len(data(await tenant.get(f"{path}/comments"))) == 1
    agent = await add_agent(app_runtime, tenant)
    for i in range(6):
        data(await tenant.post(f"{path}/reply", json={"content": f"r{i}"}), 201)
        data(await tenant.post(f"{path}/notes", json={"content": f"n{i}"}, token=agent.token), 201)
    with statements(app_runtime) as large:
        thread = data(await tenant.get(f"{path}/comments"))
    assert len(thread) == 13 and thread[-1]["author"]["id"] == agent.agent_id
    assert len(small) == len(large) <= 3
