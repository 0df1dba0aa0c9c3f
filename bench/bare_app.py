"""The ceiling: FastAPI on the same server stack, answering a constant envelope."""

import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response

app = FastAPI()
BODY = b'{"success":true,"data":{"agent":{"id":"01900000-0000-7000-8000-000000000000"}}}'
# a precomputed page (e.g. 50 tickets as Enque answers them), served as is at /page
PAGE = Path(os.environ["BARE_PAGE_FILE"]).read_bytes() if "BARE_PAGE_FILE" in os.environ else BODY


@app.get("/health")
async def health() -> PlainTextResponse:
    return PlainTextResponse("ok")


@app.get("/bare")
async def bare() -> Response:
    return Response(BODY, media_type="application/json")


@app.get("/page")
async def page() -> Response:
    return Response(PAGE, media_type="application/json")
