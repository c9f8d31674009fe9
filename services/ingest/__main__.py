"""`python -m services.ingest`: the Event Hub consumer (see README.md here)."""

import asyncio
import signal
import sys

from dedup.health import Health, serve_health
from dedup.logs import configure_logging
from dedup.settings import load_settings
from services.ingest.eventhub import SERVICE, ConfigError, consume
from services.ingest.settings import IngestSettings


async def serve(settings: IngestSettings) -> None:
    health = Health()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    http = await serve_health(health, settings.http_host, settings.http_port)
    try:
        await consume(settings, health, stop)
    finally:
        await http.cleanup()


def main() -> None:
    settings = load_settings(IngestSettings)
    configure_logging(SERVICE, settings.log_level)
    try:
        asyncio.run(serve(settings))
    except ConfigError as error:
        print(f"ingest: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
