"""One small HTTP port per service: /metrics, /healthz (liveness), /readyz (readiness)."""

from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


@dataclass
class Health:
    """Mutable process state the probes report; the runtime flips it."""

    ready: bool = False
    alive: bool = True
    detail: str = "starting"


def _app(health: Health) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(status=200 if health.alive else 500, text=health.detail)

    async def readyz(_: web.Request) -> web.Response:
        return web.Response(status=200 if health.ready else 503, text=health.detail)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_health(health: Health, host: str, port: int) -> web.AppRunner:
    """Start the probe and metrics server; the caller calls `cleanup()` on the runner."""
    runner = web.AppRunner(_app(health), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
