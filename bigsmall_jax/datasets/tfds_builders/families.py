"""The dataset families: one TFDS builder per dataset, and configs derived from a family's named ones.

Families (TFDS ``name``): `bigsmall_synthetic` (default), `bigsmall_bp4d_plus` (configs fold1..fold3, the
paper's subject-independent folds; the pulse label is the POS pseudo-PPG ``pos_env_norm_bvp`` in
``train`` and the blood-pressure wave in ``test``, the paper's recipe), `bigsmall_ubfc_rppg`,
`bigsmall_pure` and `bigsmall_generic` (videos + CSV). A real-data family names its reader
(`bigsmall_jax.datasets.readers`) as ``READER``; `bigsmall_jax.datasets.registry` lists the families by
short name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow_datasets as tfds

from bigsmall_jax import synthetic
from bigsmall_jax.datasets.preprocess import PreprocessedVideo, preprocess_recording
from bigsmall_jax.datasets.readers import bp4d_plus, generic, pure, ubfc_rppg
from bigsmall_jax.datasets.readers.common import Reader
from bigsmall_jax.datasets.tfds_builders.builder import (
    LABEL_KINDS,
    SPLITS,
    BigSmallBuilder,
    BigSmallConfig,
    split_by_fraction,
)
from bigsmall_jax.errors import UserError, file_error

log = logging.getLogger(__name__)


def _synthetic_config(settings: dict[str, Any]) -> synthetic.SyntheticConfig:
    """A `SyntheticConfig` from a config's ``synthetic`` settings; `UserError` listing the fields otherwise."""
    try:
        return synthetic.SyntheticConfig(**settings)
    except TypeError as e:
        names = ", ".join(f.name for f in dataclasses.fields(synthetic.SyntheticConfig))
        raise UserError(f"bad synthetic setting ({e}); valid: {names}") from None


class BigsmallSynthetic(BigSmallBuilder):
    """Synthetic faces with known pulse, respiration and AUs (`bigsmall_jax.synthetic`); splits by subject."""

    name = "bigsmall_synthetic"
    DESCRIPTION = "Synthetic BigSmall clips (bigsmall_jax.synthetic), split by subject."
    # The data is the generator's output: a new version whenever its videos change, so that data built
    # by an earlier generator (same settings, other videos) is not read back.
    VERSION = tfds.core.Version("1.5.0")
    RELEASE_NOTES = {
        **BigSmallBuilder.RELEASE_NOTES,
        "1.1.0": "Physical style: AUs at three quarters of the classic strength, 40% lossless recordings and "
                 "JPEG 75-95, resting heart and breathing rates for 80% of videos, frames above 320 pixels lit "
                 "at 320.",
        "1.2.0": "AU onsets 0.5-1.2 s and offsets 0.8-2 s (were 0.3-1 s both); physical style: AUs at the "
                 "classic strength.",
        "1.3.0": "Physical style: fidgeting (head motion across 0.5-4 Hz) and light changes at 2x (level drift, "
                 "steps, colour drift).",
        "1.4.0": "Physical style: half the videos draw a resting heart rate (was 80%), the rest 45-150 beats/min.",
        "1.5.0": "Physical style: sensor noise of a 480-pixel sensor, binned in frames smaller than that.",
    }
    BUILDER_CONFIGS = [
        BigSmallConfig(name="default", face_crop="box",
                       description="Default SyntheticConfig, 144/9 pixels, 3-frame clips, all labels."),
    ]
    needs_source = False

    def _split_subjects(self, root):
        splits = synthetic.subject_splits(_synthetic_config(self.builder_config.synthetic))
        return {name: [str(s) for s in splits[name]] for name in SPLITS if name in splits}

    def _iter_recordings(self, root, subjects):
        cfg = _synthetic_config(self.builder_config.synthetic)
        count = len(set(subjects)) * cfg.videos_per_subject
        return count, synthetic.iter_recordings(cfg, subjects=list(subjects))

    def _preprocessed_videos(self, root, split, subjects):
        cfg = _synthetic_config(self.builder_config.synthetic)
        wanted = set(subjects)
        tasks = [(self.builder_config.synthetic, s, v, self.builder_config.preprocess_config())
                 for s in range(cfg.n_subjects) if synthetic.subject_id(s) in wanted
                 for v in range(cfg.videos_per_subject)]
        workers = self._workers
        if workers is None:
            workers = _auto_workers(len(tasks), cfg.n_subjects * cfg.videos_per_subject * cfg.num_frames >= 2000)
        if workers <= 0:
            return super()._preprocessed_videos(root, split, subjects)
        return len(tasks), _pool_map(_synthetic_video, tasks, workers)


def _synthetic_video(task) -> PreprocessedVideo:
    """Worker: generate and preprocess one synthetic video."""
    settings, subject_index, video_index, pp_config = task
    rec = synthetic.generate_recording(subject_index, video_index, _synthetic_config(settings))
    return preprocess_recording(rec, pp_config)


def _pool_map(fn, tasks: Sequence, workers: int) -> Iterator:
    """fn(task) for every task in order, computed by `workers` spawned processes (safe after JAX started)."""
    pool = multiprocessing.get_context("spawn").Pool(workers)
    try:
        yield from pool.imap(fn, tasks)
        pool.close()  # let the workers exit on their own: terminating them leaks their semaphores
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _auto_workers(n_tasks: int, big_enough: bool) -> int:
    """Worker processes when none are asked for: one per available core, at most 4, for enough work."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 4, n_tasks) if big_enough and cores > 1 else 0


def _trial_video(task) -> tuple[str, PreprocessedVideo | str]:
    """Worker: read and preprocess one trial -> ("ok", video), or ("skip", the one-line reason) unless strict."""
    dataset, root, trial, options, pp_config, bvp_key, strict, progress = task
    from bigsmall_jax.datasets import registry  # the worker's own import (spawned processes start bare)

    reader = registry.get_reader(dataset)
    try:
        rec = reader.read_trial(root, trial, progress=progress, **options)
        return "ok", preprocess_recording(rec, pp_config, bvp_key=bvp_key)
    except UserError as e:
        if strict:
            raise
        return "skip", str(e)


class _RealDatasetBuilder(BigSmallBuilder, skip_registration=True):
    """A family read by a `bigsmall_jax.datasets` reader; subjects split by `BigSmallConfig.split_fractions`.

    A reader with ``read_trial`` is read trial by trial: a trial that cannot be read is skipped with one
    warning line (an error with ``strict``), and trials can be read by worker processes.
    """

    READER: Reader

    def _split_subjects(self, root):
        subjects = self.READER.list_subjects(root)
        if not subjects:
            raise file_error(root, f"no {self.name.removeprefix('bigsmall_')} recordings found")
        return split_by_fraction(subjects, self.builder_config.split_fractions)

    def _iter_recordings(self, root, subjects):
        return None, self.READER.iter_recordings(root, subjects=list(subjects), **self.builder_config.reader_options)

    def _preprocessed_videos(self, root, split, subjects):
        if self.READER.read_trial is None:
            return super()._preprocessed_videos(root, split, subjects)
        config = self.builder_config
        bvp_key = config.test_bvp_key if split == "test" else config.train_bvp_key
        trials = self.READER.list_trials(root, list(subjects))
        workers = self._workers if self._workers is not None else _auto_workers(len(trials), len(trials) >= 4)
        workers = min(workers, len(trials))
        tasks = [(self.name.removeprefix("bigsmall_"), root, t, dict(config.reader_options),
                  config.preprocess_config(), bvp_key, self._strict, self._progress and workers <= 0)
                 for t in trials]
        results = _pool_map(_trial_video, tasks, workers) if workers > 0 else map(_trial_video, tasks)

        def videos():
            for status, value in results:
                if status == "skip":
                    log.warning("%s (trial skipped)", value)
                    self.skipped.append(value)
                else:
                    yield value

        return len(trials), videos()


class BigsmallBp4dPlus(_RealDatasetBuilder):
    """BP4D+ (the paper's data): 12 AUs, blood pressure / POS pulse, respiration; the paper's 3 folds."""

    name = "bigsmall_bp4d_plus"
    READER = bp4d_plus.READER
    DESCRIPTION = ("BP4D+ clips, the paper's subject-independent folds. Pulse label: POS pseudo-PPG "
                   "(pos_env_norm_bvp) in train, the blood-pressure wave in test.")
    BUILDER_CONFIGS = [
        BigSmallConfig(name=f"fold{k}", fold=k, labels=("bvp", "resp", "au"), train_bvp_key="pos_env_norm_bvp",
                       test_bvp_key="bvp", face_crop="none",
                       description=f"Fold {k}: Split{k}_Train -> train, Split{k}_Test -> test; no face crop (the "
                                   "paper's recipe: the bottom square of each frame, whole).")
        for k in (1, 2, 3)
    ]
    DEFAULT_CONFIG_NAME = "fold1"
    MANUAL_DOWNLOAD_INSTRUCTIONS = ("Pass the BP4D+ root as source_dir: the release (2D+3D/, Physiology/, "
                                    "AUCoding/) or a folder of <subject>_<trial>.mat files.")

    def _split_subjects(self, root):
        folds = bp4d_plus.bp4d_fold_subjects(self.builder_config.fold)
        return {"train": list(folds["train"]), "test": list(folds["test"])}


def _pulse_only_configs() -> list[BigSmallConfig]:
    """The configs of a pulse-only dataset: a subject split for training, and all-test for cross-dataset tests.

    The face is cropped as the rPPG-Toolbox's loaders crop it (``face_crop="toolbox"``: frame 0's Haar box
    grown 1.5 times, not squared).
    """
    return [
        BigSmallConfig(name="default", labels=("bvp",), optional_labels=("hr_bpm",), face_crop="toolbox",
                       description="Subjects 60/20/20 into train/validation/test (sorted ids)."),
        BigSmallConfig(name="all_test", labels=("bvp",), optional_labels=("hr_bpm",), face_crop="toolbox",
                       split_fractions=(("test", 1.0),),
                       description="Every subject in test (cross-dataset evaluation)."),
    ]


class BigsmallUbfcRppg(_RealDatasetBuilder):
    """UBFC-rPPG: PPG (and the HR it gives) only."""

    name = "bigsmall_ubfc_rppg"
    READER = ubfc_rppg.READER
    DESCRIPTION = "UBFC-rPPG clips (pulse only), split by subject."
    BUILDER_CONFIGS = _pulse_only_configs()


class BigsmallPure(_RealDatasetBuilder):
    """PURE: PPG (and the HR it gives) only."""

    name = "bigsmall_pure"
    READER = pure.READER
    DESCRIPTION = "PURE clips (pulse only), split by subject."
    BUILDER_CONFIGS = _pulse_only_configs()


class BigsmallGeneric(_RealDatasetBuilder):
    """Any videos with per-frame labels in CSV files (`bigsmall_jax.datasets` generic reader)."""

    name = "bigsmall_generic"
    READER = generic.READER
    DESCRIPTION = "Videos + per-frame CSV labels; labels a video lacks are NaN."
    BUILDER_CONFIGS = [
        BigSmallConfig(name="default", labels=(), optional_labels=LABEL_KINDS,
                       description="Subjects 60/20/20 into train/validation/test; every label optional."),
        BigSmallConfig(name="all_test", labels=(), optional_labels=LABEL_KINDS, split_fractions=(("test", 1.0),),
                       description="Every subject in test; every label optional."),
    ]


_CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(BigSmallConfig)
                       if f.name not in {g.name for g in dataclasses.fields(tfds.core.BuilderConfig)})


def _like(value: Any, default: Any) -> Any:
    """`value` in the type of `default` where nothing is lost (2 -> 2.0 for a float setting, 2.0 -> 2 for
    an int one, lists -> tuples element by element, like the default's first element when the lengths
    differ), so that equal settings hash alike; else unchanged."""
    if isinstance(value, bool) or isinstance(default, bool):
        return value
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
        if len(value) == len(default):
            return tuple(_like(v, d) for v, d in zip(value, default, strict=True))
        if default:  # another length: typed like the default's first element (e.g. split fractions)
            return tuple(_like(v, default[0]) for v in value)
        return tuple(value)
    return value


def derive_config(cls: type[BigSmallBuilder], config: str | None = None, **overrides) -> BigSmallConfig:
    """A family's named config, with `overrides` applied as a new config of a derived name.

    Args:
      cls: the family's builder class.
      config: a name in the family's BUILDER_CONFIGS (None: the family's default).
      **overrides: `BigSmallConfig` fields (``big_size=...``, ``n_segment=...``, ...); for the synthetic
        family also `bigsmall_jax.synthetic.SyntheticConfig` fields (``n_subjects=...``, ...). None values
        are ignored.

    Returns:
      The named config itself when there is nothing to override (or every override equals its value);
      otherwise a copy named ``<config>-<8 hex digits of the settings' hash>`` (the same settings always
      give the same name, so the same data directory). Values are first put in the type of the setting's
      default (`_like`): ``duration_s=2`` and ``duration_s=2.0`` are one dataset.

    Raises:
      UserError: unknown config name or unknown setting.
    """
    configs = {c.name: c for c in cls.BUILDER_CONFIGS}
    config = config or cls.DEFAULT_CONFIG_NAME
    if config not in configs:
        raise UserError(f"{cls.name}: unknown config {config!r}; valid: {', '.join(configs)}")
    base = configs[config]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return base
    fields, synth = {}, dict(base.synthetic)
    synth_defaults: dict[str, Any] = {}
    if cls is BigsmallSynthetic:
        synth_defaults = {**dataclasses.asdict(synthetic.SyntheticConfig()), **synth}
    reader_choices = getattr(getattr(cls, "READER", None), "options", {})
    options = dict(base.reader_options)
    for key, value in overrides.items():
        if key in reader_choices:
            if value not in reader_choices[key]:
                raise UserError(f"{cls.name}: setting {key}={value!r}: valid: {', '.join(reader_choices[key])}")
            options[key] = value
        elif key in _CONFIG_FIELDS and key not in ("synthetic", "reader_options"):
            value = _like(value, getattr(base, key))
            fields[key] = tuple(value) if key in ("labels", "optional_labels", "split_fractions") else value
        elif key in synth_defaults:
            synth[key] = _like(value, synth_defaults[key])
        else:
            valid = (*_CONFIG_FIELDS, *synth_defaults, *reader_choices)
            raise UserError(f"{cls.name}: unknown setting {key!r}; valid: "
                            f"{', '.join(k for k in valid if k not in ('synthetic', 'reader_options'))}")
    for key in ("labels", "optional_labels"):
        bad = [k for k in fields.get(key, ()) if k not in LABEL_KINDS]
        if bad:
            raise UserError(f"unknown label kind(s) {bad}; valid: {', '.join(LABEL_KINDS)}")
    options = {k: v for k, v in options.items() if v != reader_choices[k][0]}  # defaults are left unset
    if options != base.reader_options:
        fields["reader_options"] = options
    new = dataclasses.replace(base, synthetic=synth, **fields)
    if new.settings() == base.settings():
        return base
    new.preprocess_config()  # bad settings fail here, before anything is written
    if cls is BigsmallSynthetic:
        _synthetic_config(new.synthetic)
    digest = hashlib.sha1(json.dumps(new.settings(), sort_keys=True).encode()).hexdigest()[:8]
    changed = {**fields, **{k: synth[k] for k in synth if synth.get(k) != base.synthetic.get(k)}}
    return dataclasses.replace(new, name=f"{base.name}-{digest}",
                               description=f"{base.description or base.name} With {changed}.")

