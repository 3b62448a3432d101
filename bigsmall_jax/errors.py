"""User-facing errors and the command-line wrapper that turns them into one clear line.

A `UserError` is a problem with what the user gave us (a file, a flag, a config key): the command line
prints ``error: <message>`` on stderr and exits with status 2, with no traceback. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable[..., object])


class UserError(Exception):
    """Bad input from the user. The message names the file or key and the problem, in one line."""


def file_error(path: object, problem: str) -> UserError:
    """A `UserError` of the form ``<path>: <problem>``."""
    return UserError(f"{path}: {problem}")


def cli_main(func: F) -> F:
    """Decorate a ``main(argv=None)``: user errors become one line on stderr and exit status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        # force: libraries imported before (absl, through grain) may have put their own handler on the root
        # logger, which would otherwise keep this one out and hide INFO lines.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
        try:
            return func(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper  # type: ignore[return-value]
