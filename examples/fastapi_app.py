"""Heartbeats in a FastAPI application under uvicorn.

The endpoint is plain FastAPI code and keeps FastAPI's ``receive_json`` /
``iter_text`` / ``send_json``: ``HeartbeatMiddleware`` reads the connection for it,
answers and sends ``{"type":"ping"}`` / ``{"type":"pong"}``, and never hands the
endpoint a heartbeat message. uvicorn's own protocol pings are turned off
(``ws_ping_interval=None``): the core's heartbeat is the only one. Run it, then
connect to ws://127.0.0.1:8000/ws : it answers every JSON message.
"""

from __future__ import annotations

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from heartbeat_asgi import HeartbeatMiddleware

from heartbeat_core import HeartbeatConfig

__all__ = ["app", "run"]

app = FastAPI()
app.add_middleware(HeartbeatMiddleware, config=HeartbeatConfig(interval=20, timeout=10))


@app.websocket("/ws")
async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"you said": data})
    except WebSocketDisconnect as exc:  # exc.code is 1011 when the peer was found dead
        print("gone:", exc.code)


def run(port: int = 8000) -> None:
    import uvicorn

    # ws_ping_interval=None: uvicorn's own pings off, or the peer gets two heartbeats.
    uvicorn.run(app, host="127.0.0.1", port=port, ws_ping_interval=None)


if __name__ == "__main__":
    run()
