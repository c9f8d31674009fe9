"""`python -m services.hasher`: blob events in, candidate groups out."""

if __name__ == "__main__":
    from dedup.runtime.signals import keep_early_signals

    keep_early_signals()  # first: a stop during the imports below is kept, not lost

    from dedup.runtime.stage import main
    from dedup.settings import load_settings
    from services.hasher.handler import STAGE
    from services.hasher.settings import HasherSettings
    from services.hasher.stage import open_stage

    main(STAGE, load_settings(HasherSettings), open_stage)
