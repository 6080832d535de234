"""Ingest library: load → clean → chunk → embed → upsert (`shopdesk ingest` is its CLI)."""
