"""What every `contract-review` command shares: the user's error and the one runner that reports it.

A command's function raises `UserError` (or a loader's `ValueError` / `FileNotFoundError`, whose
messages name the file and the fix) for a problem the user can fix; `run` prints it as one line
on stderr, without a traceback, and returns exit status 2. Packages import `UserError` from here,
never from `contract_review.cli`, which imports them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

USAGE_ERROR = 2
INTERRUPTED = 130


class UserError(Exception):
    """A problem the user can fix; printed as one clear message, no traceback."""


def run(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run one command; a user's problem becomes `error: ...` on stderr and exit status 2."""
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except (UserError, ValueError, FileNotFoundError) as exc:
        # ValueError: the loaders' errors (records, taxonomy, configs, models) subclass it with a message
        # that names the file and the fix
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
