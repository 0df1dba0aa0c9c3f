"""The ceiling: FastAPI on the same server stack, answering a constant envelope."""

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response

app = FastAPI()
BODY = b'{"success":true,"data":{"agent":{"id":"01900000-0000-7000-8000-000000000000"}}}'


@app.get("/health")
async def health() -> PlainTextResponse:
    return PlainTextResponse("ok")


@app.get("/bare")
async def bare() -> Response:
    return Response(BODY, media_type="application/json")
