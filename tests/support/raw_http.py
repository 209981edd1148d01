"""HTTP requests written by hand on a real socket, the way slow networks deliver them:
a body in several TCP segments with pauses between them, or a chunked body."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any


async def post_in_pieces(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    headers: dict[str, str],
    cuts: tuple[int, ...] = (300,),
    pause_s: float = 0.3,
    chunked: bool = False,
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` cut at the byte offsets ``cuts``, each piece flushed on its own and
    followed by ``pause_s`` (asyncio sets TCP_NODELAY: one piece, one segment); the status and JSON answer.

    ``chunked``: Transfer-Encoding: chunked, one chunk per piece, and no Content-Length.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(len(body))}
        head = {"Host": f"{host}:{port}", "Content-Type": "application/json", "Connection": "close", **framing}
        head.update(headers)
        writer.write(
            f"POST {path} HTTP/1.1\r\n".encode()
            + "".join(f"{name}: {value}\r\n" for name, value in head.items()).encode()
            + b"\r\n"
        )
        bounds = [0, *(cut for cut in cuts if 0 < cut < len(body)), len(body)]
        for start, end in zip(bounds, bounds[1:], strict=False):
            piece = body[start:end]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
            await writer.drain()
            await asyncio.sleep(pause_s)
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head_part, _, body_part = answer.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return status, json.loads(body_part) if body_part else {}
