"""An example lens plugin (see README.md next to pyproject.toml).

- provider type ``ndjson-tokens``: a made-up protocol streaming newline-delimited JSON,
  ``{"t": "hello"}`` per token and ``{"done": true, "usage": {...}}`` at the end;
- exporter kind ``summary-line``: ``summary-line=out/summary.txt`` writes one line per
  stage x provider.
"""
