"""`python -m services.verifier`: hashed groups in, colour-checked groups out."""

if __name__ == "__main__":
    from dedup.runtime.signals import keep_early_signals

    keep_early_signals()  # first: a stop during the imports below is kept, not lost

    from dedup.runtime.stage import main
    from dedup.settings import load_settings
    from services.verifier.handler import STAGE
    from services.verifier.settings import VerifierSettings
    from services.verifier.stage import open_stage

    main(STAGE, load_settings(VerifierSettings), open_stage)
