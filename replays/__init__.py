"""Replay files of matches: CS2 demos stored in blob storage, parsed in a worker, analysed.

- :mod:`replays.blobs`: the blob storage port, a local folder (embedded) and an
  S3-compatible store; objects are written from a stream, never held whole in memory.
- :mod:`replays.demo`: what a demo is (its magic bytes) and what its stats say next to the
  game server plugin's (pure).
- :mod:`replays.parse`: the parser's process (``python -m replays.parse <file>``), so a large
  or hostile file never blocks the server; :mod:`replays.worker` runs it with limits.
"""
