"""`python -m services.ingest`: the Event Hub consumer (see README.md here)."""

if __name__ == "__main__":
    from dedup.runtime.signals import keep_early_signals

    keep_early_signals()  # first: a stop during the imports below is kept, not lost

    from services.ingest.eventhub import main

    main()
