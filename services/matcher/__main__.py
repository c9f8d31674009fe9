"""`python -m services.matcher`: embedded groups in, matched groups out."""

if __name__ == "__main__":
    from dedup.runtime.signals import keep_early_signals

    keep_early_signals()  # first: a stop during the imports below is kept, not lost

    from dedup.runtime.stage import main
    from dedup.settings import load_settings
    from services.matcher.handler import STAGE
    from services.matcher.settings import MatcherSettings
    from services.matcher.stage import open_stage

    main(STAGE, load_settings(MatcherSettings), open_stage)
