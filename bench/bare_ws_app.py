"""The ceiling of the real-time benchmark: a bare WebSocket endpoint on the same server stack
that accepts a socket and holds it, reading until the client leaves."""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse

app = FastAPI()


@app.get("/health")
async def health() -> PlainTextResponse:
    return PlainTextResponse("ok")


@app.websocket("/v1/realtime")
async def hold(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text('{"type":"ready","payload":{}}')
    try:
        while True:
            message = await websocket.receive_text()
            if '"subscribe"' in message:
                await websocket.send_text('{"type":"subscribed","payload":{}}')
    except WebSocketDisconnect:
        return
