"""`prepare` on the BP4D+ release layout: the stored clips equal the published loader's, by fold; unreadable
trials skipped (or an error with --strict), worker processes, and a clean rebuild after an interruption."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
from loader_reference import copy_tree, golden, max_abs

from bigsmall_jax import prepare as prepare_cli
from bigsmall_jax.datasets import prepare
from bigsmall_jax.datasets import tfds_builders as tb
from bigsmall_jax.datasets.preprocess import standardize_big
from bigsmall_jax.datasets.readers import bp4d_release
from bigsmall_jax.errors import UserError

# The tree's subjects are both in fold 1's training list; M001 is renamed F006 (a fold-1 test subject) so
# that fold 1 has a test split, scored against the blood-pressure wave.
RENAMED = {"M001": "F006"}


def _fold1_tree(tmp_path):
    root = copy_tree("bp4d_raw", tmp_path / "release")
    old, new = next(iter(RENAMED.items()))
    with zipfile.ZipFile(root / "2D+3D" / f"{old}.zip") as z:
        items = [(n.replace(old, new, 1), z.read(n)) for n in z.namelist()]
    (root / "2D+3D" / f"{old}.zip").unlink()
    with zipfile.ZipFile(root / "2D+3D" / f"{new}.zip", "w") as z:
        for n, data in items:
            z.writestr(n, data)
    (root / "Physiology" / old).rename(root / "Physiology" / new)
    for path in list((root / "AUCoding").rglob(f"{old}_*.csv")):
        path.rename(path.with_name(path.name.replace(old, new, 1)))
    return root


def _videos(builder, split):
    source = tb.data_source(builder, split)
    out: dict[str, list] = {}
    for i in range(len(source)):
        r = source[i]
        out.setdefault(r["video_id"].decode(), []).append(r)
    return out


def test_fold1_clips_equal_the_published_loader(tmp_path):
    g = golden("bp4d_raw")
    root = _fold1_tree(tmp_path)
    builder = prepare.ensure_dataset("bp4d_plus", tmp_path / "data", config="fold1", source_dir=root,
                                     progress=False, workers=0)
    assert builder.builder_config.name == "fold1" and builder.skipped == []
    idx = {k: int(g[f"target_idx_{k}"][0]) for k in ("bvp_train", "bvp_test", "resp")}
    au_idx = list(g["target_idx_au"])
    worst = {}
    for split, trials, bvp_col in (("train", ("F001_T1", "F001_T8"), idx["bvp_train"]),
                                   ("test", ("F006_T1",), idx["bvp_test"])):
        videos = _videos(builder, split)
        assert sorted(videos) == list(trials)
        for tid in trials:
            key = tid.replace("F006", "M001").replace("_", "")
            recs = videos[tid]
            assert [int(r["chunk_index"]) for r in recs] == list(range(len(g[f"{key}/big_clips"])))
            big = np.stack([standardize_big(r["big"], r["big_mean"], r["big_std"]) for r in recs])
            small = np.stack([r["small"] for r in recs])
            labels = g[f"{key}/label_clips"]
            ref_small = g[f"{key}/small_clips"]
            worst[("big", tid)] = max_abs(big, g[f"{key}/big_clips"])
            worst[("small_rel", tid)] = max_abs(small, ref_small) / np.abs(ref_small).max()
            assert worst[("big", tid)] <= 1e-5 and worst[("small_rel", tid)] <= 1e-5, worst
            for name, col in (("bvp", bvp_col), ("resp", idx["resp"]), ("hr_bpm", 1), ("rr_bpm", 6)):
                got = np.stack([r[name] for r in recs])
                assert max_abs(got, labels[:, :, col]) <= 1e-5, (tid, name)
            np.testing.assert_array_equal(np.stack([r["au"] for r in recs]), labels[:, :, au_idx])
            assert {r["subject"].decode() for r in recs} == {tid[:4]}
            np.testing.assert_allclose(recs[0]["fps"], 25.0)


def test_skip_unreadable_trials_with_workers_and_strict(tmp_path, capsys):
    root = _fold1_tree(tmp_path)
    (root / "Physiology" / "F001" / "T8" / "BP_mmHg.txt").unlink()
    data = tmp_path / "data"
    with pytest.raises(SystemExit) as e:
        prepare_cli.main(["--dataset", "bp4d_plus", "--config", "fold1", "--source-dir", str(root), "--data-dir",
                          str(data), "--strict", "--no-progress", "--workers", "0"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "F001/T8/BP_mmHg.txt: physiology file not found" in err
    config_dir = data / "bigsmall_bp4d_plus" / "fold1"
    assert not config_dir.exists() or not any(config_dir.iterdir())  # nothing half-written
    # Only the build lock and TFDS's note of the config's settings (.config/metadata.json): no data.
    assert not [p for p in data.rglob("*") if p.is_file() and not p.name.endswith(".lock") and ".config" not in p.parts]

    prepare_cli.main(["--dataset", "bp4d_plus", "--config", "fold1", "--source-dir", str(root), "--data-dir",
                      str(data), "--no-progress", "--workers", "2"])
    out, err = capsys.readouterr()
    assert "skipped 1 trial(s) that could not be read" in err
    builder = prepare.open_prepared("bp4d_plus", data, "fold1")
    assert sorted(_videos(builder, "train")) == ["F001_T1"] and sorted(_videos(builder, "test")) == ["F006_T1"]
    assert '"train"' in out


def test_rebuild_after_interruption(tmp_path, monkeypatch):
    root = _fold1_tree(tmp_path)
    data = tmp_path / "data"
    real = bp4d_release.read_release_trial
    calls = []

    def interrupted(root_, tid, *args, **kwargs):
        calls.append(tid)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(root_, tid, *args, **kwargs)

    monkeypatch.setattr(bp4d_release, "read_release_trial", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare.ensure_dataset("bp4d_plus", data, config="fold1", source_dir=root, progress=False, workers=0)
    monkeypatch.setattr(bp4d_release, "read_release_trial", real)
    version_dir = data / "bigsmall_bp4d_plus" / "fold1"
    # A killed build leaves an incomplete.* folder (TFDS cannot clean up); the rerun removes it.
    (version_dir / "incomplete.killed").mkdir(parents=True)
    (version_dir / "incomplete.killed" / "bigsmall_bp4d_plus-train.array_record-00000-of-00001").write_bytes(b"x")
    builder = prepare.ensure_dataset("bp4d_plus", data, config="fold1", source_dir=root, progress=False, workers=0)
    assert sorted(_videos(builder, "train")) == ["F001_T1", "F001_T8"]
    assert [p.name for p in version_dir.iterdir()] == [builder.data_path.name]


def test_reader_settings_make_their_own_config():
    cfg = tb.derive_config(tb.BigsmallBp4dPlus, "fold2", au_codes="masked", phys_grid="clock")
    assert cfg.name.startswith("fold2-") and cfg.reader_options == {"au_codes": "masked", "phys_grid": "clock"}
    assert cfg.fold == 2
    same = tb.derive_config(tb.BigsmallBp4dPlus, "fold2", au_codes="published")  # the default: no option stored
    assert same.reader_options == {} and same.settings() == tb.derive_config(tb.BigsmallBp4dPlus, "fold2").settings()
    with pytest.raises(UserError, match=r"setting au_codes='x': valid: published, masked"):
        tb.derive_config(tb.BigsmallBp4dPlus, "fold1", au_codes="x")
    with pytest.raises(UserError, match="unknown setting 'ppg_grid'"):
        tb.derive_config(tb.BigsmallBp4dPlus, "fold1", ppg_grid="timestamps")
