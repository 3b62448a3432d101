"""bigsmall_jax.cli: literal parsing of key=value items and output-file checks."""

from __future__ import annotations

import pytest

from bigsmall_jax import cli
from bigsmall_jax.errors import UserError


@pytest.mark.parametrize("text, value", [("3", 3), ("1e-3", 1e-3), ("(4, 8)", (4, 8)), ("True", True),
                                         ("'x'", "x"), ("every", "every"), ("a b", "a b"), ("", "")])
def test_parse_literal(text, value):
    assert cli.parse_literal(text) == value and type(cli.parse_literal(text)) is type(value)


def test_key_values():
    assert cli.split_key_value(" optim.lr =3e-4") == ("optim.lr", 3e-4)
    assert cli.split_key_value("a=b=c") == ("a", "b=c")
    assert cli.parse_key_values(["x=1", "y=every", "x=2"]) == {"x": 2, "y": "every"}
    for bad in ("novalue", "=3"):
        with pytest.raises(UserError, match="--set .* is not of the form key=value"):
            cli.parse_key_values([bad], what="--set")


def test_check_output_file(tmp_path):
    assert cli.check_output_file(tmp_path / "a.json", ".json", "--output") == tmp_path / "a.json"
    with pytest.raises(UserError, match="--output must be a .json file"):
        cli.check_output_file(tmp_path / "a.txt", ".json", "--output")
    (tmp_path / "d.json").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        cli.check_output_file(tmp_path / "d.json", ".json", "--output")
    with pytest.raises(UserError, match="does not exist"):
        cli.check_output_file(tmp_path / "no" / "a.png", ".png", "--plot")


def test_check_output_file_refuses_a_folder_root_cannot_write():
    with pytest.raises(UserError, match=r"^/proc/out.json: .*cannot write into the folder of --output"):
        cli.check_output_file("/proc/out.json", ".json", "--output")


def test_check_output_dir(tmp_path):
    assert cli.check_output_dir(tmp_path / "new" / "deeper", "--workdir") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # nothing created
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="--workdir exists and is not a directory"):
        cli.check_output_dir(tmp_path / "file", "--workdir")
    with pytest.raises(UserError, match=f"--workdir cannot be created: {tmp_path / 'file'} is a file"):
        cli.check_output_dir(tmp_path / "file" / "run", "--workdir")
    with pytest.raises(UserError, match="^/proc/run: --workdir cannot be written"):
        cli.check_output_dir("/proc/run", "--workdir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
