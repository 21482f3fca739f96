"""The floor: the least a Starlette server on this machine can do for two requests.

`python -m bench.floor PORT WORKERS` serves it with the same uvicorn options as `tobira serve`.
A round is what a passkey login looks like from outside with all of its work removed: an
"options" request answering a small JSON object, then a "verify" request whose JSON body is
parsed and answered. Tobira's ceremonies per second divided by the floor's rounds per second is
the ratio the benchmark reports: it says how much of the framework's capacity the login work
leaves, independent of how fast this machine happens to be.
"""

from __future__ import annotations

import secrets
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def options(request: Request) -> JSONResponse:
    return JSONResponse({"publicKey": {"challenge": secrets.token_urlsafe(32), "rpId": "localhost",
                                       "userVerification": "required", "allowCredentials": []}})


async def verify(request: Request) -> JSONResponse:
    body = await request.json()
    return JSONResponse({"status": "ok", "redirect": "/account", "id": body.get("id")})


app = Starlette(routes=[Route("/options", options, methods=["POST"]), Route("/verify", verify, methods=["POST"])])


def main() -> None:
    import uvicorn

    from server.cli import uvicorn_options

    port, workers = int(sys.argv[1]), int(sys.argv[2])
    if workers > 1:
        uvicorn.run("bench.floor:app", workers=workers, **uvicorn_options("127.0.0.1", port))
    else:
        uvicorn.run(app, **uvicorn_options("127.0.0.1", port))


if __name__ == "__main__":
    main()
