"""The planning page's web server: Starlette routes served by uvicorn on a socket we bind.

Loopback (127.0.0.1) unless a host is given explicitly; nothing is read from the
environment (uvicorn is configured in code, its logging config and proxy headers off),
and the pages name no other origin (``Content-Security-Policy``: only this server). A
``Host`` header other than the loopback names is refused on a loopback server, so a web
page elsewhere cannot reach it by DNS rebinding.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import webbrowser
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pipesim import api
from pipesim.app import page
from pipesim.app.page_script import SCRIPT
from pipesim.app.session import PAGE_TRIALS, PlanningSession
from pipesim.errors import InputError

LOOPBACK = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_NAMES = ["127.0.0.1", "localhost"]


def bind(host: str | None, port: int) -> socket.socket:
    """A listening TCP socket on ``host`` (default: loopback) and ``port`` (0: any free)."""
    where = host or LOOPBACK
    family = socket.AF_INET6 if ":" in where else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((where, port))
    except OSError as exc:
        sock.close()
        raise InputError(
            f"port={port} on host={where}: cannot listen there ({exc.strerror or exc}). Give "
            "another port= (0 picks a free one), or close what uses it.",
            parameters=("port", "host"),
        ) from None
    sock.listen(128)  # connections wait in the backlog until the server takes them
    return sock


def _headers(response: Any) -> Any:
    response.headers["Content-Security-Policy"] = page.SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def make_app(session: PlanningSession, loopback: bool = True) -> Any:
    """The Starlette application of one planning session."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    def params(request: Request) -> dict[str, str]:
        return dict(request.query_params)

    def index(request: Request) -> Response:
        given = params(request)
        errors = session.configure(given)
        if any(f.name in given for f in session.fields) or "segment" in given:
            errors |= session.vary(given)
        if "revenue" in given:
            errors |= session.aim(given)
        return _headers(HTMLResponse(page.page_html(session, errors)))

    def variant(request: Request) -> Response:
        errors = session.vary(params(request))
        status = "fix the marked field(s); the figures are those of the last levers that worked"
        if not errors:
            status = f"updated in {session.compare_seconds:.2f} s" if session.compared else ""
        body = {"errors": errors, "html": page.variant_section(session), "status": status}
        return _headers(JSONResponse(body))

    def goal(request: Request) -> Response:
        errors = session.aim(params(request))
        body = {"errors": errors, "html": page.goal_section(session), "status": ""}
        return _headers(JSONResponse(body))

    def script(request: Request) -> Response:
        return _headers(Response(SCRIPT, media_type="text/javascript"))

    def download(request: Request) -> Response:
        name = request.path_params["name"]
        data: bytes | None
        if name == "pipesim-results.zip":
            data, kind = session.results_zip(), "application/zip"
        elif name == "pipesim.xlsx":
            data = session.workbook()
            kind = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        elif name == "levers.parquet":
            data, kind = session.levers_file(), "application/vnd.apache.parquet"
            if data is None:
                return _headers(
                    Response("No lever is set: move one first.", 404, media_type="text/plain")
                )
        else:
            return _headers(Response("Not found.", 404, media_type="text/plain"))
        disposition = f'attachment; filename="{name}"'
        return _headers(
            Response(data, media_type=kind, headers={"Content-Disposition": disposition})
        )

    def route(path: str, fn: Callable[[Request], Response]) -> Route:
        return Route(path, fn, methods=["GET"])  # a plain function: run in a worker thread

    middleware = (
        [Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES)] if loopback else []
    )
    routes = [
        route("/", index),
        route("/variant", variant),
        route("/goal", goal),
        route("/page.js", script),
        route("/download/{name}", download),
    ]
    return Starlette(routes=routes, middleware=middleware)


class PageServer:
    """A uvicorn server of one session on a socket bound here (its address known at once).

    ``serve()`` runs it in this thread until Ctrl-C; ``start()``/``stop()`` in a background
    thread (tests, notebooks).
    """

    def __init__(self, session: PlanningSession, sock: socket.socket, loopback: bool) -> None:
        import uvicorn

        self.session = session
        self.socket = sock
        config = uvicorn.Config(
            make_app(session, loopback),
            log_config=None,
            log_level="warning",
            access_log=False,
            server_header=False,
            proxy_headers=False,
            lifespan="off",
            loop="asyncio",
            http="h11",
            ws="none",
            interface="asgi3",
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port the socket is bound to."""
        host, port = self.socket.getsockname()[:2]
        return host, port

    @property
    def url(self) -> str:
        """The page's address."""
        host, port = self.address
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/"

    def serve(self) -> None:
        """Serve in this thread until stopped (Ctrl-C)."""
        with contextlib.suppress(KeyboardInterrupt):
            self.server.run(sockets=[self.socket])

    def start(self, timeout: float = 60.0) -> PageServer:
        """Serve in a background thread; return once it answers."""
        self.thread = threading.Thread(target=self.serve, name="pipesim-app", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the planning page's server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Stop serving, wait for the thread, close the socket, remove the session's files."""
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=30)
        self.socket.close()
        self.session.close()


def open_page(
    scenario: str | os.PathLike[str] | None = None,
    *,
    port: int = DEFAULT_PORT,
    host: str | None = None,
    trials: int = PAGE_TRIALS,
    seed: int = 0,
) -> PageServer:
    """Check the scenario, bind the port, run the base forecast: a server ready to start.

    The scenario is loaded (and checked) before anything else, so a broken one stops here
    with its message; then the socket is bound (a taken port stops here too).
    """
    api.require_app_extras()
    loaded = api.load_scenario(Path(scenario) if scenario is not None else api.demo_path())
    sock = bind(host, port)
    try:
        session = PlanningSession(loaded, trials=trials, seed=seed)
    except BaseException:
        sock.close()
        raise
    return PageServer(session, sock, loopback=host is None or host in LOOPBACK_NAMES)


@contextlib.contextmanager
def running(*args: Any, **kwargs: Any) -> Iterator[PageServer]:
    """:func:`open_page`, started in a background thread, stopped on leaving the block."""
    server = open_page(*args, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def serve(
    scenario: str | os.PathLike[str] | None = None,
    *,
    port: int = DEFAULT_PORT,
    host: str | None = None,
    browser: bool = True,
    trials: int = PAGE_TRIALS,
    seed: int = 0,
    say: Callable[[str], object] = print,
) -> None:
    """``pipesim app``: serve the planning page until Ctrl-C, opening it in a browser."""
    server = open_page(scenario, port=port, host=host, trials=trials, seed=seed)
    say(f"pipesim planning page: {server.url}  (Ctrl-C to stop)")
    if host is not None and host not in LOOPBACK_NAMES:
        say(f"Listening on {host}: other computers that reach it can use the page.")
    if browser:

        def when_up() -> None:
            while not server.server.started and not server.server.should_exit:
                time.sleep(0.05)
            if server.server.started:
                webbrowser.open(server.url)

        threading.Thread(target=when_up, daemon=True).start()
    try:
        server.serve()
    finally:
        server.socket.close()
        server.session.close()
        say("Stopped.")
