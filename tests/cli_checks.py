"""Shared assertion for the command lines' bad-input behaviour (imported by the CLI tests)."""

import pytest


def expect_one_error_line(capsys, main, argv, out_dir, *needles) -> None:
    """`main(argv)` exits 2 with exactly one ``error:`` line holding every needle, no traceback, and leaves
    nothing (no output, no temporary file) in `out_dir`."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in errors[0], errors[0]
    assert list(out_dir.iterdir()) == []
