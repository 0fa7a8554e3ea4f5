"""Backends whose library must be imported before transformers.

Unsloth patches transformers and peft as it is imported, and its patches are incomplete when they
came first. The CLI and the benchmarks call `preload(backend)` before anything imports transformers;
this module imports nothing heavy itself. A library that is missing is reported by its backend
(training/backends/<name>.py), with the fix.
"""

from __future__ import annotations

import contextlib
import importlib

PRELOAD = {"unsloth": "unsloth"}  # backend -> the library to import first


def preload(backend: str) -> None:
    if backend in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(PRELOAD[backend])
