"""The shared TFDS builder of BigSmall clips: config, features, clips of a video, storage and reading.

One example is one clip of ``n_segment`` consecutive frames, with everything needed to train on it and
to put the clips of a video back together in order for evaluation:

  ============== ======================== ===============================================================
  feature        shape / dtype            meaning
  ============== ======================== ===============================================================
  big            (T, B, B, 3) uint8       INTER_AREA-resized face frames (B = big_size, 144)
  big_mean       () float32               mean of the whole video's ``big`` (Big input = (big - mean) / std)
  big_std        () float32               std of the whole video's ``big``
  small          (T, S, S, 3) float32     diff-normalized frames (S = small_size, 9)
  bvp            (T,) float32             diff-normalized pulse label (NaN when the dataset has none)
  resp           (T,) float32             diff-normalized respiration label (NaN when none)
  au             (T, 12) float32          AU labels in {0, 1}, NaN = missing (`recording.AU_NAMES` order)
  hr_bpm, rr_bpm (T,) float32             heart / respiration rate in 1/min (NaN when unknown)
  frame_mask     (T,) bool                False for frames padded after the video's end (``tail="pad"``)
  video_id       text                     `Recording.name`
  subject        text                     `Recording.subject`
  chunk_index    int32                    the clip's place in its video: frames [i*T, (i+1)*T)
  num_chunks     int32                    clips in the video
  fps            float32                  frames per second (Hz)
  ============== ======================== ===============================================================

T = ``n_segment``. Every dataset has the same features; label kinds a dataset does not provide (or that
its config leaves out) are NaN, and the trainer masks NaNs. Records keep generation order
(``disable_shuffling``): the clips of a video are consecutive and in time order, so evaluation can stream
videos back (`bigsmall_jax.datasets.input_pipeline.iter_videos`); training shuffles with grain.

Storage: ``big`` as uint8 is exact (the recipe resizes uint8 frames, see `bigsmall_jax.datasets.preprocess`), so a
frame costs B*B*3 + S*S*3*4 bytes plus labels, 63.3 KB serialized at 144/9 instead of the 249.8 KB of the
PyTorch original's float32 pickles; ArrayRecord compresses the files further (51 KB per frame on disk for
the default synthetic dataset, 4.9x less). `storage_stats` measures it on the built files.

The families (`bigsmall_jax.datasets.tfds_builders.families`) share `BigSmallBuilder`; a family only names
its reader, its label kinds and how subjects are assigned to splits. Real datasets read the raw files
from ``source_dir`` (a builder argument) or TFDS's ``manual_dir``.

An interrupted build leaves nothing that loads: TFDS writes into ``incomplete.*`` directories and renames
them only when every split is written (a Python exception removes the temporary directory; a killed
process leaves an ``incomplete.*`` directory that is never read and can be deleted).
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tqdm import tqdm

from bigsmall_jax.datasets.preprocess import PreprocessConfig, chunk_video, preprocess_recording
from bigsmall_jax.datasets.recording import AU_NAMES, Recording
from bigsmall_jax.errors import UserError, file_error

log = logging.getLogger(__name__)

LABEL_KINDS: tuple[str, ...] = ("bvp", "resp", "au", "hr_bpm", "rr_bpm")
SPLITS: tuple[str, ...] = ("train", "validation", "test")
# Bytes per frame of the PyTorch original (float32 Big and Small arrays in pickles).
TORCH_BYTES_PER_FRAME = 144 * 144 * 3 * 4 + 9 * 9 * 3 * 4

_CITATION = """\
@inproceedings{narayanswamy2024bigsmall,
  title={BigSmall: Efficient Multi-Task Learning for Disparate Spatial and Temporal Physiological
         Measurements},
  author={Narayanswamy, Girish and Liu, Yujia and Yang, Yuzhe and Ma, Chengqian and Liu, Xin and
          McDuff, Daniel and Patel, Shwetak},
  booktitle={Proceedings of the IEEE/CVF Winter Conference on Applications of Computer Vision (WACV)},
  year={2024}
}"""
_VERSION = tfds.core.Version("1.0.0")
_RELEASE_NOTES = {
    "1.0.0": "First release: n_segment-frame clips, uint8 Big frames with per-video mean/std, float32 "
             "diff-normalized Small frames, diff-normalized pulse/respiration, AUs with NaN for missing.",
}


@dataclasses.dataclass(eq=False)
class BigSmallConfig(tfds.core.BuilderConfig):
    """What a built dataset contains: resolution, clip length, label kinds and the source settings.

    Attributes:
      big_size: side of the Big frames in pixels (paper: 144).
      small_size: side of the Small frames in pixels (paper: 9).
      n_segment: frames per clip (paper: 3).
      face_crop: `bigsmall_jax.datasets.preprocess.PreprocessConfig.face_crop` ("box" for synthetic data).
      crop_every: detection period in frames for face_crop "every" / "median".
      enlarge: face box enlargement factor.
      tail: the last T % n_segment frames of a video: "drop" or "pad" (padded frames have frame_mask 0).
      labels: label kinds every recording must have (subset of `LABEL_KINDS`; missing is an error).
      optional_labels: label kinds stored when a recording has them, NaN otherwise. Kinds in neither
        list are stored as NaN even when a recording has them.
      train_bvp_key: the pulse label of non-test splits: "bvp" (`Recording.bvp`) or a key of
        `Recording.extra` (BP4D+: "pos_env_norm_bvp").
      test_bvp_key: the pulse label of the test split.
      fold: BP4D+ fold (1..3) of the paper's subject-independent cross-validation, else None.
      split_fractions: for datasets without official splits: ((split, fraction), ...) over the sorted
        subject ids, in order; fractions sum to 1.
      synthetic: `bigsmall_jax.synthetic.SyntheticConfig` fields (synthetic family only).
      reader_options: the family's reader settings (``READER.options``: name -> choices, the first the
        default), e.g. BP4D+ ``au_codes="masked"``; unset ones take their default. Left out of
        `settings` when empty, so configs made before it keep their names.
    """

    big_size: int = 144
    small_size: int = 9
    n_segment: int = 3
    face_crop: str = "first"
    crop_every: int = 30
    enlarge: float = 1.5
    tail: str = "drop"
    labels: tuple[str, ...] = ("bvp", "resp", "au")
    optional_labels: tuple[str, ...] = ("hr_bpm", "rr_bpm")
    train_bvp_key: str = "bvp"
    test_bvp_key: str = "bvp"
    fold: int | None = None
    split_fractions: tuple[tuple[str, float], ...] = (("train", 0.6), ("validation", 0.2), ("test", 0.2))
    synthetic: dict[str, Any] = dataclasses.field(default_factory=dict)
    reader_options: dict[str, str] = dataclasses.field(default_factory=dict)

    def preprocess_config(self) -> PreprocessConfig:
        """The `bigsmall_jax.datasets.preprocess.PreprocessConfig` this dataset is built with."""
        return PreprocessConfig(big_size=self.big_size, small_size=self.small_size, face_crop=self.face_crop,
                                crop_every=self.crop_every, enlarge=self.enlarge, n_segment=self.n_segment,
                                tail=self.tail)

    def settings(self) -> dict[str, Any]:
        """The config's data settings (everything but name/version/description) as plain JSON types."""
        base = {f.name for f in dataclasses.fields(tfds.core.BuilderConfig)}
        out = {}
        for f in dataclasses.fields(self):
            if f.name not in base and not (f.name == "reader_options" and not self.reader_options):
                value = getattr(self, f.name)
                out[f.name] = json.loads(json.dumps(value))
        return out


# ----------------------------------------------------------------------------------------------------------
# Split assignment.


def split_by_fraction(subjects: Sequence[str], fractions: Sequence[tuple[str, float]]) -> dict[str, list[str]]:
    """Assigns sorted subject ids to splits in contiguous blocks of the given fractions.

    Args:
      subjects: subject ids (duplicates ignored).
      fractions: ((split name, fraction), ...); fractions >= 0 summing to 1.

    Returns:
      {split: [subject, ...]} for every named split (possibly empty), subject-disjoint, covering all.
      Block ends are round(cumulative fraction * n), so e.g. 10 subjects at 0.6/0.2/0.2 give 6/2/2.
    """
    fracs = [float(f) for _, f in fractions]
    if any(f < 0 for f in fracs) or abs(sum(fracs) - 1.0) > 1e-6:
        raise UserError(f"split_fractions must be >= 0 and sum to 1, got {list(fractions)}")
    subs = sorted(set(subjects))
    ends = np.round(np.cumsum(fracs) * len(subs)).astype(int)
    out, start = {}, 0
    for (name, _), end in zip(fractions, ends, strict=True):
        out[name] = subs[start:end]
        start = end
    return out


# ----------------------------------------------------------------------------------------------------------
# One clip -> one example.


def _features(config: BigSmallConfig) -> tfds.features.FeaturesDict:
    t, b, s = config.n_segment, config.big_size, config.small_size
    f32 = np.float32
    return tfds.features.FeaturesDict({
        # Raw bytes: 70x faster to serialize than TFDS's default int64 lists; ArrayRecord compresses the file.
        "big": tfds.features.Tensor(shape=(t, b, b, 3), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES),
        "big_mean": tfds.features.Scalar(dtype=f32),
        "big_std": tfds.features.Scalar(dtype=f32),
        "small": tfds.features.Tensor(shape=(t, s, s, 3), dtype=f32, encoding=tfds.features.Encoding.BYTES),
        "bvp": tfds.features.Tensor(shape=(t,), dtype=f32),
        "resp": tfds.features.Tensor(shape=(t,), dtype=f32),
        "au": tfds.features.Tensor(shape=(t, len(AU_NAMES)), dtype=f32),
        "hr_bpm": tfds.features.Tensor(shape=(t,), dtype=f32),
        "rr_bpm": tfds.features.Tensor(shape=(t,), dtype=f32),
        "frame_mask": tfds.features.Tensor(shape=(t,), dtype=np.bool_),
        "video_id": tfds.features.Text(),
        "subject": tfds.features.Text(),
        "chunk_index": tfds.features.Scalar(dtype=np.int32),
        "num_chunks": tfds.features.Scalar(dtype=np.int32),
        "fps": tfds.features.Scalar(dtype=f32),
    })


def clip_examples(video, config: BigSmallConfig, source: str = "") -> Iterator[dict[str, Any]]:
    """The examples (feature dicts) of one preprocessed video, in time order.

    Args:
      video: a `bigsmall_jax.datasets.preprocess.PreprocessedVideo`.
      config: the dataset config (clip length, tail mode, stored label kinds).
      source: the recording's file, for error messages.

    Raises:
      UserError: a label kind in ``config.labels`` is missing from the video, or Big/Small are not finite.
    """
    source = source or video.name
    missing = [k for k in config.labels if k not in video.labels]
    if missing:
        raise file_error(source, f"recording has no {', '.join(missing)} label(s), which dataset config "
                                 f"{config.name!r} stores")
    if not (np.isfinite(video.big_mean) and np.isfinite(video.big_std)):
        raise file_error(source, "Big frame statistics are not finite")
    if not np.all(np.isfinite(video.small)):
        raise file_error(source, "Small frames contain NaN/inf")
    t = config.n_segment
    chunks = chunk_video(video, config.n_segment, config.tail)
    for chunk in chunks:
        labels = chunk["labels"]
        example = {
            "big": chunk["big_u8"],
            "big_mean": np.float32(video.big_mean),
            "big_std": np.float32(video.big_std),
            "small": np.asarray(chunk["small"], np.float32),
            "frame_mask": np.asarray(chunk["frame_mask"]) > 0,
            "video_id": video.name,
            "subject": str(video.subject),
            "chunk_index": np.int32(chunk["chunk_index"]),
            "num_chunks": np.int32(len(chunks)),
            "fps": np.float32(video.fps),
        }
        for kind in LABEL_KINDS:
            shape = (t, len(AU_NAMES)) if kind == "au" else (t,)
            if kind in labels and (kind in config.labels or kind in config.optional_labels):
                example[kind] = np.asarray(labels[kind], np.float32).reshape(shape)
            else:
                example[kind] = np.full(shape, np.nan, np.float32)
        yield example


# ----------------------------------------------------------------------------------------------------------
# The shared builder.


class BigSmallBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of every family: preprocesses each split's recordings and writes their clips.

    A family defines `_split_subjects` (subjects of each split) and `_iter_recordings` (the recordings of
    some subjects). Constructor arguments are TFDS's (``data_dir``, ``config``, ``version``, plus
    ``file_format``; ArrayRecord is the default) and:

    Args:
      source_dir: where the raw dataset lives (real datasets); overrides ``manual_dir``.
      progress: show a tqdm progress bar per video while building.
      workers: processes that generate and preprocess videos in parallel (synthetic family and readers
        with ``read_trial``; 0: in this process; None: one per available core, at most 4, for datasets of
        2000 frames or more / 4 trials or more).
      strict: a trial that cannot be read is an error (False: it is skipped with one warning line, and
        listed in ``skipped``).
    """

    VERSION = _VERSION
    RELEASE_NOTES = _RELEASE_NOTES
    BUILDER_CONFIGS = [BigSmallConfig(name="default", description="144/9 pixels, 3-frame clips.")]
    DEFAULT_CONFIG_NAME = "default"
    MANUAL_DOWNLOAD_INSTRUCTIONS = "Pass the raw dataset's directory as source_dir (or manual_dir)."
    DESCRIPTION = "BigSmall clips."
    HOMEPAGE = "https://arxiv.org/abs/2303.11573"
    # TFDS would find this file through `importlib_resources`, which it does not install on Python >= 3.9.
    code_path = epath.Path(__file__)

    def __init__(self, *, source_dir: str | os.PathLike | None = None, progress: bool = True,
                 workers: int | None = None, strict: bool = False, **kwargs):
        self._source_dir = source_dir
        self._progress = progress
        self._workers = workers
        self._strict = strict
        self.skipped: list[str] = []  # one line per trial skipped while building
        kwargs.setdefault("file_format", "array_record")
        super().__init__(**kwargs)

    # -- what a family defines ------------------------------------------------------------------------------

    @abc.abstractmethod
    def _split_subjects(self, root: str | None) -> dict[str, list[str]]:
        """{split name: subject ids} for this config; ``root`` is the raw data directory (None: synthetic)."""

    @abc.abstractmethod
    def _iter_recordings(self, root: str | None, subjects: Sequence[str]) -> tuple[int | None, Iterator[Recording]]:
        """(number of videos if known, iterator over the recordings of these subjects)."""

    needs_source = True

    # -- TFDS hooks -----------------------------------------------------------------------------------------

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        settings = json.dumps(config.settings(), sort_keys=True)
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"{self.DESCRIPTION}\nConfig {config.name}: {config.description or ''}\n{settings}",
            features=_features(config),
            homepage=self.HOMEPAGE,
            citation=_CITATION,
            disable_shuffling=True,
        )

    def _source_root(self, dl_manager) -> str | None:
        if not self.needs_source:
            return None
        root = self._source_dir
        if root is None:
            try:
                root = dl_manager.manual_dir
            except AssertionError:  # TFDS asserts when the manual dir does not exist
                root = None
        check_source_dir(self.name, root)
        return os.fspath(root)

    def _split_generators(self, dl_manager):
        root = self._source_root(dl_manager)
        splits = self._split_subjects(root)
        for name, subjects in splits.items():
            log.info("%s/%s: split %s has %d subjects", self.name, self.builder_config.name, name, len(subjects))
        empty = [n for n, s in splits.items() if not s]
        if empty:
            raise UserError(f"{self.name}/{self.builder_config.name}: split(s) {', '.join(empty)} have no "
                            f"subjects ({ {n: len(s) for n, s in splits.items()} })")
        return {name: self._generate_examples(root, name, subjects) for name, subjects in splits.items()}

    def _preprocessed_videos(self, root, split: str, subjects: Sequence[str]) -> tuple[int | None, Iterator]:
        """(number of videos if known, iterator of `PreprocessedVideo`) of a split, in a fixed order."""
        config = self.builder_config
        pp_config = config.preprocess_config()
        bvp_key = config.test_bvp_key if split == "test" else config.train_bvp_key
        total, recordings = self._iter_recordings(root, subjects)

        def videos():
            for rec in recordings:
                yield preprocess_recording(rec, pp_config, bvp_key=bvp_key)  # the raw frames are freed next

        return total, videos()

    def _generate_examples(self, root, split, subjects):
        config = self.builder_config
        total, videos = self._preprocessed_videos(root, split, subjects)
        wanted = set(subjects)
        key = 0
        seen = set()
        bar = tqdm(videos, total=total, desc=f"{self.name}/{config.name} {split}", unit="video",
                   disable=not self._progress)
        for video in bar:
            if video.subject not in wanted:
                raise UserError(f"{video.name}: reader returned subject {video.subject!r}, not one of split "
                                f"{split!r}'s subjects")
            if video.name in seen:
                raise UserError(f"{video.name}: duplicate video id in split {split!r}")
            seen.add(video.name)
            bar.set_postfix_str(video.name, refresh=False)
            for example in clip_examples(video, config):
                yield key, example
                key += 1
        if key == 0:
            raise UserError(f"{self.name}/{config.name}: split {split!r} produced no clips (videos shorter "
                            f"than {config.n_segment} frames, or none found)")


# ----------------------------------------------------------------------------------------------------------
# Raw data, storage and reading.


def check_source_dir(name: str, root) -> None:
    """UserError unless `root` (the raw data of dataset `name`) exists."""
    if root is None or not os.path.exists(os.fspath(root)):
        where = root if root is not None else "(none given)"
        raise UserError(f"{name}: raw data directory {where} does not exist; pass --source-dir DIR "
                        "(source_dir=...) pointing at the raw dataset")


def storage_stats(builder: tfds.core.DatasetBuilder) -> dict[str, dict[str, float]]:
    """Bytes on disk per stored frame, per split, measured on the built ArrayRecord files.

    Returns:
      {split: {"bytes": file bytes, "frames": clips * n_segment, "bytes_per_frame": ...,
      "vs_torch": TORCH_BYTES_PER_FRAME / bytes_per_frame}} plus "all" over every split.
    """
    t = builder.builder_config.n_segment
    out = {}
    total_bytes = total_frames = 0
    for split, info in builder.info.splits.items():
        folder = os.fspath(builder.data_dir)
        nbytes = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
                     if f.startswith(f"{builder.name}-{split}."))
        frames = info.num_examples * t
        out[split] = {"bytes": nbytes, "frames": frames, "bytes_per_frame": nbytes / max(frames, 1)}
        total_bytes += nbytes
        total_frames += frames
    out["all"] = {"bytes": total_bytes, "frames": total_frames, "bytes_per_frame": total_bytes / max(total_frames, 1)}
    for v in out.values():
        v["vs_torch"] = TORCH_BYTES_PER_FRAME / v["bytes_per_frame"] if v["bytes_per_frame"] else float("nan")
    return out


def data_source(builder: tfds.core.DatasetBuilder, split: str):
    """The random-access source of one split of a built dataset (a grain-compatible data source).

    Raises:
      UserError: the dataset is not built, or has no such split.
    """
    if not builder.is_prepared():
        raise UserError(f"{builder.data_path}: dataset {builder.name}/{builder.builder_config.name} is not built "
                        "(run python -m bigsmall_jax.prepare)")
    splits = list(builder.info.splits)
    if split not in splits:
        raise UserError(f"{builder.data_path}: no split {split!r}; valid: {', '.join(splits)}")
    return builder.as_data_source(split=split)

