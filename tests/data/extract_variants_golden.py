"""Writes tests/data/variants_golden.npz, the compact part of ../shared/reference/variants/ the tests keep.

    python tests/data/extract_variants_golden.py [REFERENCE_DIR]

The four reference state dicts are 8.6 MB each, 93% of it the three heads' first dense layers. What the
lateral and grayscale models change is all before the heads, so this keeps, for each of the four classes, the
conv weights (PyTorch layout), the features entering the heads (``fused``) and the block-2 inputs (the Big one
cropped to its top-left 16x16 pixels, two whole 8x8 upsampling blocks each way), on the first input set, whose
Big rows 0 and 3 (the only ones the Big branch sees) and Small rows are kept. The heads' mapping is tested
with the multitask reference (bigsmall_golden.npz); the full outputs on both input sets are tested against
../shared/reference/variants when it is there.
"""

import sys
from pathlib import Path

import numpy as np

from bigsmall_jax.checkpoints.pth import load_state_dict

CLASSES = ("BSSFWTSM_BiDirLatConn", "BSSFWTSM_Big2SmallLatConn", "BSSFWTSM_Small2BigLatConn",
           "BigSmallSlowFastWTSM_GrayScaleBig")


def main(reference: Path, out: Path) -> None:
    arrays = {}
    for name in CLASSES:
        golden = np.load(reference / f"{name}.npz")
        arrays.setdefault("big_first_frames", golden["big"][::3])
        arrays.setdefault("small", golden["small"])
        for key, value in load_state_dict(reference / f"{name}.pth").items():
            if "_conv" in key:
                arrays[f"{name}/{key}"] = np.asarray(value, np.float32)
        arrays[f"{name}/fused"] = golden["fused"]
        if "small_block2_in" in golden:
            arrays[f"{name}/small_block2_in"] = golden["small_block2_in"]
            arrays[f"{name}/big_block2_in_crop"] = golden["big_block2_in"][:, :, :16, :16]
    np.savez_compressed(out, **arrays)


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else root.parent / "shared" / "reference" / "variants",
         Path(__file__).parent / "variants_golden.npz")
