"""`dedup report`: what the ranker decided, as JSON, CSV and an HTML gallery.

`model` and `gallery` are pure (decisions in, text out); `cli` reads the decisions topic
and blob storage and writes the files.
"""
