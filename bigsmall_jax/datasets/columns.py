"""A split's clips decoded once into memory-mapped columns, so that a training batch is an array gather.

Reading a clip from its ArrayRecord file means decompressing the whole record (all T Big frames) and parsing
its protobuf; the trainer does this for every clip of every epoch, and on two CPU cores it cannot reach the
rate an accelerator trains at (`python -m bigsmall_jax.benchmark` names the slowest stage). `open_columns`
decodes the split once (`input_pipeline.decode_examples`, in blocks) into one ``.npy`` file per batch key,
in ``<dataset dir>/columns/<split>-<first|all>/``, written atomically (`bigsmall_jax.files.atomic_directory`)
under a lock so that concurrent trainers build it once; later epochs and runs map the files
(``np.load(mmap_mode="r")``, no pickles) and gather a batch's clips with one fancy index per key.

Only what the model reads is kept: with Big downsampling (``first``) one uint8 Big frame per clip, 65 KB per
clip in all, a third of the dataset's own size; ``all`` keeps every frame. The files are tied to the build
they come from (they live in its folder) and are checked against it (clip count and layout) when opened; a
folder that does not match is rebuilt, and a data dir that cannot be written, or is not local (``gs://``),
falls back to decoding every batch (`input_pipeline.ClipBatches`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bigsmall_jax.files import atomic_directory

log = logging.getLogger(__name__)

# Per-clip keys of a batch (`input_pipeline`'s layout, before flattening clips into frames).
KEYS: tuple[str, ...] = ("big", "big_mean", "big_std", "small", "au", "au_mask", "bvp", "bvp_mask", "resp",
                         "resp_mask", "frame_mask")
_BLOCK = 256  # clips decoded per request while building


class Columns:
    """The memory-mapped columns of one split: ``gather(indices)`` -> a batch in `input_pipeline`'s layout.

    Picklable without its arrays (grain worker processes map the files again).

    Args:
      folder: a folder `build_columns` wrote.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / "meta.json").read_text())
        self._arrays: dict[str, np.ndarray] | None = None

    def arrays(self) -> dict[str, np.ndarray]:
        """{key: (N, rows per clip, ...) read-only memory map}."""
        if self._arrays is None:
            self._arrays = {k: np.load(self.folder / f"{k}.npy", mmap_mode="r", allow_pickle=False) for k in KEYS}
        return self._arrays

    def __len__(self) -> int:
        return int(self.meta["records"])

    def gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The clips at `indices` as one batch, clips' rows consecutive: {key: (B * rows per clip, ...)}."""
        out = {}
        for k, column in self.arrays().items():
            v = column[np.asarray(indices)]
            out[k] = v.reshape(v.shape[0] * v.shape[1], *v.shape[2:])
        return out

    def __getstate__(self):
        return {"folder": self.folder, "meta": self.meta, "_arrays": None}


def columns_folder(source, big_first_only: bool) -> Path | None:
    """Where the columns of a TFDS source live (None for other sources)."""
    info = getattr(source, "dataset_info", None)
    split = getattr(source, "split", None)
    if info is None or split is None or "://" in str(info.data_dir):  # local files only (not gs://...)
        return None
    return Path(info.data_dir) / "columns" / f"{split}-{'first' if big_first_only else 'all'}"


def _matches(folder: Path, records: int, layout: tuple[int, int, int]) -> bool:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("records") == records and tuple(meta.get("layout", ())) == tuple(layout) and all(
        (folder / f"{k}.npy").is_file() for k in KEYS)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def build_columns(source, folder: Path, layout: tuple[int, int, int], big_first_only: bool,
                  progress: bool = True) -> None:
    """Decodes every clip of `source` into `folder` (atomically: the folder appears complete or not at all)."""
    from bigsmall_jax.datasets.input_pipeline import decode_examples, read_raw  # noqa: PLC0415 (cycle)

    n, t = len(source), layout[0]
    with atomic_directory(folder, overwrite=True) as tmp:
        files: dict[str, np.ndarray] = {}
        for start in tqdm(range(0, n, _BLOCK), desc=f"columns {folder.name}", unit="block", leave=False,
                          disable=not progress):
            stop = min(n, start + _BLOCK)
            batch = decode_examples(read_raw(source, range(start, stop)), *layout, big_first_only=big_first_only)
            for k in KEYS:
                v = batch[k].reshape(stop - start, -1, *batch[k].shape[1:])
                if k not in files:
                    files[k] = np.lib.format.open_memmap(tmp / f"{k}.npy", mode="w+", dtype=v.dtype,
                                                         shape=(n, *v.shape[1:]))
                files[k][start:stop] = v
        for f in files.values():
            f.flush()
        meta = {"records": n, "layout": list(layout), "n_segment": t, "big_first_only": big_first_only}
        (tmp / "meta.json").write_text(json.dumps(meta))


def open_columns(source, layout: tuple[int, int, int], big_first_only: bool, progress: bool = True
                 ) -> Columns | None:
    """The columns of a TFDS source, built first when missing or stale; None when they cannot be written."""
    folder = columns_folder(source, big_first_only)
    if folder is None:
        return None
    try:
        with _lock(folder.parent / f".{folder.name}.lock"):
            if not _matches(folder, len(source), layout):
                log.info("decoding %d clips into %s (once)", len(source), folder)
                build_columns(source, folder, layout, big_first_only, progress)
        return Columns(folder)
    except OSError as e:
        log.warning("no columns in %s (%s): every batch is decoded from the records", folder, e)
        return None
