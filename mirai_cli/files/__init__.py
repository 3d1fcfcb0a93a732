"""Outputs on disk: atomic writes, content hashes, folder locks, the provenance manifest."""
