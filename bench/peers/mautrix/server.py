"""Minimal application service built on the PyPI `mautrix` package, for assisto-bench.

It is what someone would write with mautrix instead of assisto: `mautrix.appservice.AppService`
serves the homeserver's `PUT /_matrix/app/v1/transactions/{txnId}` itself (the library's own
route, token check and transaction de-duplication), and one event handler registered with
`matrix_event_handler` counts the `m.room.message` events it is given, the way a bot would look
at each message for a command. Nothing is stored: a transaction is acknowledged as soon as its
events were handed to the handlers (mautrix runs them as background tasks).

`GET /processed` (added to the library's aiohttp application) answers the number of events the
handler has finished, as a plain number, so that the bench can tell when all were processed.

Usage: server.py --port PORT --hs-token TOKEN [--host 127.0.0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import tempfile
from pathlib import Path

from aiohttp import web
from mautrix.appservice import AppService
from mautrix.appservice.state_store import FileASStateStore
from mautrix.types import Event, EventType


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--hs-token", required=True)
    p.add_argument("--homeserver", default="http://127.0.0.1:9", help="never contacted")
    return p.parse_args(argv)


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    state_dir = tempfile.TemporaryDirectory(prefix="mautrix-peer-")
    appservice = AppService(
        server=args.homeserver,
        domain="localhost",
        as_token="bench-as-token",
        hs_token=args.hs_token,
        bot_localpart="bench_bot",
        id="bench",
        # The library's default store, kept in a temporary directory instead of the cwd.
        state_store=FileASStateStore(Path(state_dir.name) / "mx-state.json", binary=False),
    )
    processed = 0

    @appservice.matrix_event_handler
    async def on_event(event: Event) -> None:
        nonlocal processed
        if event.type == EventType.ROOM_MESSAGE:
            body = getattr(event.content, "body", "") or ""
            # The "handler": a bot would parse commands here; plain messages need nothing.
            _is_command = body.startswith("!assisto")
        processed += 1

    async def processed_route(_: web.Request) -> web.Response:
        return web.Response(text=str(processed))

    appservice.app.router.add_route("GET", "/processed", processed_route)

    await appservice.start(host=args.host, port=args.port)
    print(f"mautrix peer listening on {args.host}:{args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await appservice.stop()
    state_dir.cleanup()


if __name__ == "__main__":
    asyncio.run(main(parse_args(sys.argv[1:])))
