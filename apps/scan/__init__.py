"""`dedup scan`: the pipeline's five stages in-process over a local folder (see cli.py)."""
