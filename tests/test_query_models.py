"""A query string validated as one model keeps FastAPI's rules, errors and documentation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import Depends, FastAPI, Query
from pydantic import Field

from enque.core.query import QueryModel, query_of, query_parameters
from tests.support.api import Tenant, data, error
from tests.support.helpdesk import new_ticket


class Sample(QueryModel):
    tags: tuple[str, ...] = Field((), alias="tag", max_length=3)
    limit: int = Field(10, ge=1, le=100, description="how many")
    name: str | None = Field(None, max_length=5)
    flag: bool = False


def sample_app() -> FastAPI:
    app = FastAPI()

    @app.get("/one", openapi_extra={"parameters": query_parameters(Sample)})
    async def one(query: Sample = Depends(query_of(Sample))) -> dict[str, object]:
        return query.model_dump()

    @app.get("/declared")
    async def declared(
        tag: list[str] = Query([], max_length=3),
        limit: int = Query(10, ge=1, le=100, description="how many"),
        name: str | None = Query(None, max_length=5),
        flag: bool = Query(False),
    ) -> None:
        return None

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sample_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


async def test_values_defaults_repeats_and_unknown_parameters(client: httpx.AsyncClient):
    answer = (await client.get("/one?tag=a&tag=b&limit=7&name=x&name=last&flag=yes&other=1")).json()
    assert answer == {"tags": ["a", "b"], "limit": 7, "name": "last", "flag": True}
    assert (await client.get("/one")).json() == {
        "tags": [],
        "limit": 10,
        "name": None,
        "flag": False,
    }


async def test_bad_values_fail_as_fastapi_fails_them(client: httpx.AsyncClient):
    for query in ("limit=0", "limit=x", "name=toolong", "flag=maybe", "tag=1&tag=2&tag=3&tag=4"):
        mine = await client.get(f"/one?{query}")
        theirs = await client.get(f"/declared?{query}")
        assert mine.status_code == theirs.status_code == 422, query
        where = [(e["loc"], e["type"]) for e in mine.json()["detail"]]
        expected = [(e["loc"], e["type"]) for e in theirs.json()["detail"]]
        assert where == expected, query


def test_documented_as_fastapi_documents_declared_parameters():
    spec = sample_app().openapi()["paths"]
    assert spec["/one"]["get"]["parameters"] == spec["/declared"]["get"]["parameters"]


async def test_inbox_errors_stay_in_the_envelope(tenant: Tenant):
    await new_ticket(tenant)
    found = data(await tenant.get("/v1/tickets?status=Unread&status=Open&bogus=1&limit=1"))
    assert len(found) == 1
    failed = error(await tenant.get("/v1/tickets?status=Open&status=Nope"), 422, "VALIDATION_ERROR")
    assert [d["path"] for d in failed["details"]] == ["query.status.1"]
