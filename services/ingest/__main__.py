"""`python -m services.ingest`: the Event Hub consumer (see README.md here)."""

from services.ingest.eventhub import main

if __name__ == "__main__":
    main()
