"""Shared by the framework folders: layout tracking, weight mappings, I/O layout, train_map, artifacts."""
