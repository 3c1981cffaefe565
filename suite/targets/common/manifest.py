"""The manifest of an exported artifact's folder (``manifest.json``): its name and its reader.

A module of its own so that the artifact cache (:mod:`suite.targets.common.artifacts`) and the provenance
written into artifacts (:mod:`suite.provenance`) can both read manifests without importing each other.
"""
from __future__ import annotations

import json
from pathlib import Path

MANIFEST = "manifest.json"


def read_manifest(folder: str | Path) -> dict | None:
    """The folder's manifest, or None when it is missing or torn."""
    try:
        with open(Path(folder) / MANIFEST) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
