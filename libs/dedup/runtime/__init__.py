"""The stage runtime. ``contract``: what a stage is (its handler's ``Output``, ``Stage``, the
retry policy), light enough for ``dedup scan``; ``kafka`` and ``stage``: the only modules
that import aiokafka (the runner, the publisher, topic readers)."""
