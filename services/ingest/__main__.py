"""`python -m services.ingest`: the Event Hub consumer (see README.md here)."""

import asyncio
import contextlib
import logging
import sys

from dedup.health import Health, serve_health
from dedup.logs import configure_logging
from dedup.runtime.stage import keep_early_signals, request_stop_on_signals
from dedup.settings import load_settings
from services.ingest.eventhub import SERVICE, ConfigError, consume
from services.ingest.settings import IngestSettings

log = logging.getLogger("dedup.ingest")


async def serve(settings: IngestSettings) -> None:
    health = Health()
    stop = asyncio.Event()
    request_stop_on_signals(stop)
    http = await serve_health(health, settings.http_host, settings.http_port)
    consuming = asyncio.create_task(consume(settings, health, stop))
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({consuming, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not consuming.done() and not health.ready:
            # A stop while it still waits for blob storage or Kafka: nothing to finish.
            consuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consuming
            log.info("stopped before start-up finished")
        else:
            await consuming  # consume() finishes the batch in hand
    finally:
        stopped.cancel()
        await http.cleanup()


def main() -> None:
    keep_early_signals()
    settings = load_settings(IngestSettings)
    configure_logging(SERVICE, settings.log_level)
    try:
        asyncio.run(serve(settings))
    except ConfigError as error:
        print(f"ingest: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
