"""`python -m services.embedder`: candidate groups in, groups with embedding evidence out."""

if __name__ == "__main__":
    from dedup.runtime.signals import keep_early_signals

    keep_early_signals()  # first: a stop during the imports below is kept, not lost

    from dedup.runtime.stage import main
    from dedup.settings import load_settings
    from services.embedder.handler import STAGE
    from services.embedder.settings import EmbedderSettings
    from services.embedder.stage import open_stage

    main(STAGE, load_settings(EmbedderSettings), open_stage)
