"""Shared assertions for the command lines' bad-input behaviour (imported by the CLI tests)."""

from pathlib import Path

import pytest


def _expect_exit_2_with_one_error_line(capsys, main, argv, needles) -> None:
    """`main(argv)` exits 2 with exactly one ``error:`` line holding every needle, and no traceback."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in errors[0], errors[0]


def expect_one_error_line(capsys, main, argv, out_dir, *needles) -> None:
    """`main(argv)` exits 2 with exactly one ``error:`` line holding every needle, no traceback, and leaves
    nothing (no output, no temporary file) in `out_dir`."""
    _expect_exit_2_with_one_error_line(capsys, main, argv, needles)
    assert list(out_dir.iterdir()) == []


def tree_snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under `folder` (relative, as text) with its bytes (None for a directory)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def expect_nothing_changed(capsys, main, argv, folder, *needles) -> None:
    """`main(argv)` exits 2 with exactly one ``error:`` line holding every needle, no traceback, and leaves
    every file and folder under `folder` as it was (nothing written, replaced or deleted)."""
    before = tree_snapshot(folder)
    _expect_exit_2_with_one_error_line(capsys, main, argv, needles)
    assert tree_snapshot(folder) == before
