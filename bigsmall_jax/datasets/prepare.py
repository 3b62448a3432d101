"""Build and open preprocessed BigSmall datasets (TFDS ArrayRecord) in a TFDS data directory.

`ensure_dataset` builds a dataset unless it is already there (the trainer and ``python -m
bigsmall_jax.prepare`` call it); `open_prepared` opens a built one without building anything (evaluation
too). A dataset already built with the same settings is reused. Settings other than the named config's make
a config of their own (``<config>-<hash>``), so differently built data never mixes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import tensorflow_datasets as tfds

from bigsmall_jax.cli import check_output_dir
from bigsmall_jax.datasets import registry
from bigsmall_jax.datasets.tfds_builders import (
    TORCH_BYTES_PER_FRAME,
    BigSmallBuilder,
    BigSmallConfig,
    check_source_dir,
    storage_stats,
)
from bigsmall_jax.errors import UserError, file_error

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _build_lock(data_dir: str, name: str) -> Iterator[None]:
    """An exclusive lock on ``<data_dir>/.<name>.lock`` so that concurrent callers build only once.

    The lock file exists only while a build holds it: the holder removes it before releasing the lock, and a
    waiter that then gets the lock on the removed file tries again on a new one.
    """
    path = os.path.join(data_dir, f".{name}.lock")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            current = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _remove_empty(folders: list[Path]) -> None:
    """Removes each folder of `folders` (in order) that is empty; the others stay."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _remove_stale(paths: list[Path]) -> None:
    """Removes the folders an interrupted build of this config left (only called under its build lock)."""
    for p in paths:
        log.warning("%s: left by an interrupted build; removing it", p)
        shutil.rmtree(p, ignore_errors=True)


def _family_builder(cls: type[BigSmallBuilder], data_dir: str, cfg: BigSmallConfig, **kwargs) -> BigSmallBuilder:
    """A family's builder of config `cfg` in `data_dir` (built or not); `kwargs` go to the builder."""
    # A named config goes by name: TFDS refuses a copy of it (e.g. unpickled in a grain worker) as "custom".
    config_arg = cfg.name if any(cfg is c for c in cls.BUILDER_CONFIGS) else cfg
    return cls(data_dir=data_dir, config=config_arg, **kwargs)


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in name.split("."))
    except ValueError:
        return (-1,)


def find_prepared(dataset: str, data_dir: str | os.PathLike, config: str | None = None) -> Path:
    """The directory of a prepared dataset: ``<data_dir>/bigsmall_<name>/<config>/<version>``.

    Args:
      dataset: short or TFDS name ("synthetic", "bigsmall_bp4d_plus", ...).
      data_dir: the TFDS data directory it was prepared into.
      config: the config's directory name (e.g. "fold1", or "default-1a2b3c4d" for one built with
        overrides); None: the only config prepared there.

    Returns:
      The newest prepared version's directory of that config.

    Raises:
      UserError: unknown dataset, nothing prepared, or several configs and none chosen.
    """
    name = registry.builder_class(dataset).name
    root = Path(data_dir).expanduser() / name
    hint = f"prepare it with `python -m bigsmall_jax.prepare --dataset {dataset} --data-dir {data_dir}`"

    def prepared(config_dir: Path) -> list[Path]:
        return sorted((v for v in config_dir.iterdir() if (v / "dataset_info.json").is_file()),
                      key=lambda v: _version_key(v.name))

    if not root.is_dir():
        raise file_error(root, f"no prepared {name} dataset; {hint}")
    configs = sorted(d.name for d in root.iterdir() if d.is_dir() and prepared(d))
    if config is None:
        if len(configs) != 1:
            raise file_error(root, f"{'no prepared configs' if not configs else 'several prepared configs'}; "
                                   f"choose one with --config ({', '.join(configs) or hint})")
        config = configs[0]
    if config not in configs:
        raise file_error(root / config, f"config not prepared; prepared: {', '.join(configs) or 'none'}")
    return prepared(root / config)[-1]


def open_prepared(dataset: str, data_dir: str | os.PathLike, config: str | BigSmallConfig | None = None,
                  **builder_kwargs) -> tfds.core.DatasetBuilder:
    """The builder of a built dataset, read-only: nothing is built.

    Args:
      dataset: short or TFDS name.
      data_dir: the TFDS data directory it was built into.
      config: a `BigSmallConfig` (e.g. from `registry.make_config`): the family's own builder of exactly that
        config. A config directory name ("fold1", "default-1a2b3c4d") or None (the only one there): the
        newest version found on disk (`find_prepared`), opened from its directory, so configs made with
        overrides open by name.
      **builder_kwargs: family builder arguments (``source_dir``, ``progress``, ``workers``), with a
        `BigSmallConfig` only.

    Returns:
      A prepared TFDS builder; ``tfds_builders.data_source(builder, split)`` reads a split.

    Raises:
      UserError: unknown dataset or config, or the dataset is not built / cannot be read.
    """
    if isinstance(config, BigSmallConfig):
        cls = registry.builder_class(dataset)
        builder = _family_builder(cls, os.fspath(os.path.expanduser(data_dir)), config, **builder_kwargs)
        if not builder.is_prepared():
            raise UserError(f"{builder.data_path}: dataset {cls.name}/{config.name} is not built "
                            "(run python -m bigsmall_jax.prepare)")
        return builder
    path = find_prepared(dataset, data_dir, config)
    try:
        return tfds.builder_from_directory(os.fspath(path))
    except Exception as e:  # noqa: BLE001 - TFDS raises many types for unreadable metadata
        raise file_error(path, f"cannot read the prepared dataset ({type(e).__name__}: {e})") from None


def _build(builder: BigSmallBuilder, data_dir: str, source_dir: str | os.PathLike | None) -> float:
    """Builds `builder`'s dataset into `data_dir` (raw data from `source_dir`); returns the seconds taken."""
    log.info("building %s/%s into %s", builder.name, builder.builder_config.name, builder.data_dir)
    tfds.disable_progress_bar()  # ours is per video; TFDS's per-example bars would only add noise
    start = time.perf_counter()
    download_config = None
    if source_dir is not None:
        download_config = tfds.download.DownloadConfig(manual_dir=os.fspath(source_dir))
    config_dir = Path(builder.data_path).parent
    downloads = f".downloads-{builder.name}-{builder.builder_config.name}-"
    _remove_stale(sorted([*config_dir.glob("incomplete.*"), *Path(data_dir).glob(f"{downloads}*")]))
    # TFDS prints its own messages (stdout is for results); its download folder is not kept.
    with contextlib.redirect_stdout(sys.stderr), \
            tempfile.TemporaryDirectory(prefix=downloads, dir=data_dir) as download_dir:
        builder.download_and_prepare(download_dir=download_dir, download_config=download_config)
    return time.perf_counter() - start


def ensure_dataset(name: str, data_dir: str | os.PathLike, *, config: str | None = None,
                   source_dir: str | os.PathLike | None = None, progress: bool = True, workers: int | None = None,
                   strict: bool = False, **overrides) -> BigSmallBuilder:
    """The builder of a dataset, built first if it is not yet in `data_dir`.

    Args:
      name: "synthetic", "bp4d_plus", "ubfc_rppg", "pure", "generic" (or their ``bigsmall_`` TFDS names).
      data_dir: TFDS data directory (the data lands in ``<data_dir>/bigsmall_<name>/<config>/<version>``).
      config: the family's config name (None: its default, e.g. "default" or "fold1").
      source_dir: the raw dataset (real datasets).
      progress: tqdm bar per video while building.
      workers: parallel processes for generating / preprocessing (synthetic, and real datasets read trial
        by trial); None: automatic, 0: none.
      strict: a trial that cannot be read is an error (default: skipped with a warning line).
      **overrides: `tfds_builders.BigSmallConfig` fields, for synthetic `SyntheticConfig` fields
        (e.g. ``n_subjects=4, duration_s=3, frame_size=64``), and the family's reader settings (e.g.
        BP4D+ ``au_codes="masked"``); None values are ignored.

    Returns:
      The prepared `tfds_builders.BigSmallBuilder` (`open_prepared`); ``tfds_builders.data_source(builder,
      "train")`` reads it. Its ``skipped`` lists one line per trial skipped by this call's build (empty
      when nothing was built).

    Raises:
      UserError: unknown dataset / config / setting, missing raw data, or a bad recording. A failed build
        leaves nothing that loads.
    """
    cls = registry.builder_class(name)
    cfg = registry.make_config(name, config, **overrides)
    data_dir = os.fspath(os.path.expanduser(data_dir))
    if cls.needs_source:
        check_source_dir(cls.name, source_dir)
    kwargs = dict(source_dir=source_dir, progress=progress, workers=workers, strict=strict)
    builder = _family_builder(cls, data_dir, cfg, **kwargs)
    if builder.is_prepared():  # read-only from here: a prepared dataset needs no write access
        log.info("%s/%s: already built in %s", cls.name, cfg.name, builder.data_dir)
        return builder
    check_output_dir(data_dir, "the data directory")  # before any work
    created = [d for d in (Path(data_dir) / cls.name, Path(data_dir)) if not d.exists()]
    os.makedirs(data_dir, exist_ok=True)
    try:
        with _build_lock(data_dir, f"{cls.name}-{cfg.name}"):
            builder = _family_builder(cls, data_dir, cfg, **kwargs)
            if builder.is_prepared():  # built by another process while this one waited
                log.info("%s/%s: already built in %s", cls.name, cfg.name, builder.data_dir)
                return builder
            try:
                seconds = _build(builder, data_dir, source_dir)
            except BaseException:
                _remove_empty([Path(builder.data_path).parent])  # this config's folder, under its lock
                raise
            skipped = builder.skipped
            builder = open_prepared(name, data_dir, cfg, **kwargs)
            builder.skipped = skipped
    except BaseException:
        dataset_dir = Path(data_dir) / cls.name
        if dataset_dir in created and {p.name for p in dataset_dir.iterdir()} <= {".config"}:
            shutil.rmtree(dataset_dir / ".config", ignore_errors=True)  # TFDS's note of the config it was building
        _remove_empty(created)  # the folders this call made, once its lock file is gone
        raise
    stats = storage_stats(builder)["all"]
    log.info("built %s/%s in %.1f s: %d frames, %.0f bytes/frame on disk (%.1fx less than the %d of float32 "
             "pickles)", cls.name, cfg.name, seconds, stats["frames"], stats["bytes_per_frame"],
             stats["vs_torch"], TORCH_BYTES_PER_FRAME)
    return builder


def summary(builder) -> dict:
    """A JSON-able description of a built dataset: location, config settings, clips per split, storage."""
    stats = storage_stats(builder)
    return {
        "dataset": builder.name,
        "config": builder.builder_config.name,
        "version": str(builder.version),
        "data_dir": os.fspath(builder.data_dir),
        "settings": builder.builder_config.settings(),
        "splits": {s: {"clips": int(i.num_examples), "frames": int(stats[s]["frames"]),
                       "bytes_per_frame": round(stats[s]["bytes_per_frame"], 1)}
                   for s, i in builder.info.splits.items()},
        "bytes_per_frame": round(stats["all"]["bytes_per_frame"], 1),
        "torch_bytes_per_frame": TORCH_BYTES_PER_FRAME,
    }
