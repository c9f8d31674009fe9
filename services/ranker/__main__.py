"""`python -m services.ranker`: matched groups in, decisions out (one replica only)."""

if __name__ == "__main__":
    from dedup.runtime.signals import keep_early_signals

    keep_early_signals()  # first: a stop during the imports below is kept, not lost

    from dedup.runtime.stage import main
    from dedup.settings import load_settings
    from services.ranker.settings import RankerSettings
    from services.ranker.stage import STAGE, open_stage

    main(STAGE, load_settings(RankerSettings), open_stage)
