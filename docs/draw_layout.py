"""Draws docs/layout.png, the package's architecture (folders and how data moves through them), for the README.

    python docs/draw_layout.py
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from bigsmall_jax.figures import new_figure, save_png

OUT = Path(__file__).with_name("layout.png")

# (x, y, width, height, title, modules, colour) in axis units.
BOXES = {
    "sources": (0.1, 4.3, 2.3, 1.3, "video files + labels",
                "BP4D+ release (zip,\nphysiology, AU CSVs),\nUBFC-rPPG, PURE,\nany video + CSV", "#eeeeee"),
    "synthetic": (0.1, 1.9, 2.3, 2.1, "synthetic/",
                  "config, waveforms,\nappearance, drawing, aus,\nscene, render, recordings,\nexport, plots, dataset;\n"
                  "physical style: head,\nskin, physical, realism",
                  "#fde2e4"),
    "datasets": (2.9, 2.5, 3.0, 3.1, "datasets/",
                 "readers/ (bp4d_release, ...)\n  + registry (Recording)\nvideo_io, face (box, crop)\n"
                 "preprocess (Big, Small,\n  labels), stream (blocks)\n"
                 "tfds_builders/ (clips ->\n  ArrayRecord)\nprepare (build or open)\ninput_pipeline (grain)",
                 "#d1f0d8"),
    "train": (6.4, 4.2, 2.7, 1.4, "train/", "config, losses, optim, state,\nstep (pmap), parallel, data,\n"
              "checkpointing, workdir(_lock),\nlogs, loop, ablation", "#cfe2ff"),
    "model": (9.6, 4.2, 2.4, 1.4, "model/", "config, layers, bigsmall,\nvariants, flops", "#e2d4f7"),
    "evaluation": (6.4, 2.3, 2.7, 1.4, "evaluation/",
                   "signals (detrend, FFT),\nhrv, quality, metrics,\nplots, evaluate (Forward),\n"
                   "unsupervised (POS, ...)",
                   "#fff3b0"),
    "checkpoints": (9.6, 2.3, 2.4, 1.4, "checkpoints/",
                    "model_dir (orbax),\npth (torch-free),\ntorch_import, load,\npublished (weights/)", "#ffe5b4"),
    "inference": (6.4, 0.55, 2.7, 1.2, "inference/",
                  "video (streamed) -> waves,\nHR, RR, AUs; physio (HRV,\nquality), windows, live\n"
                  "(Monitor), detectors, runners", "#d0f4f7"),
    "export": (2.9, 0.55, 3.0, 1.2, "export/", "signature, onnx_format\n(jax2onnx), stablehlo\n(jax.export), "
               "model_export", "#f4e1d2"),
    "runtime": (9.6, 0.55, 2.4, 1.2, "runtime.py", "XLA:CPU presets,\nForward (compiled\nevaluation pass)", "#eeeeee"),
}
ARROWS = [("sources", "datasets", "read"), ("synthetic", "datasets", "render"), ("datasets", "train", "batches"),
          ("train", "model", "apply"), ("train", "checkpoints", "save"), ("train", "evaluation", "test split"),
          ("datasets", "inference", "preprocess"), ("checkpoints", "inference", "load"),
          ("runtime", "inference", ""), ("export", "inference", ".onnx")]
ENTRY = ("entry points (python -m bigsmall_jax.<command>): prepare, train, evaluate, infer, live, convert, flops, "
         "export, ablate, benchmark (benchmark/: peak, models, pipeline,\nprofile, report, suite, deploy, memory, "
         "detectors, live), "
         "synthetic;  shared: errors, "
         "files (atomic writes, JSON), figures (matplotlib), cli (key=value, output checks)")


def _centre(name: str) -> tuple[float, float]:
    x, y, w, h, *_ = BOXES[name]
    return x + w / 2, y + h / 2


def _edge_point(name: str, towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from the box centre towards `towards` leaves the box."""
    x, y, w, h, *_ = BOXES[name]
    cx, cy = _centre(name)
    dx, dy = towards[0] - cx, towards[1] - cy
    scale = min(w / 2 / abs(dx) if dx else float("inf"), h / 2 / abs(dy) if dy else float("inf"))
    return cx + dx * scale, cy + dy * scale


def main(out: Path = OUT) -> Path:
    fig = new_figure(12.5, 6.4, dpi=110)
    ax = fig.add_subplot()
    ax.set_xlim(0, 12.1)
    ax.set_ylim(0, 6.4)
    ax.axis("off")
    for x, y, w, h, title, modules, colour in BOXES.values():
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=colour, ec="#333"))
        ax.text(x + 0.1, y + h - 0.12, title, ha="left", va="top", fontsize=10, weight="bold", family="monospace")
        ax.text(x + 0.1, y + h - 0.45, modules, ha="left", va="top", fontsize=8.2, family="monospace")
    for a, b, label in ARROWS:
        p0, p1 = _edge_point(a, _centre(b)), _edge_point(b, _centre(a))
        ax.add_patch(FancyArrowPatch(p0, p1, arrowstyle="-|>", mutation_scale=12, lw=1.2, color="#333"))
        if label:
            ax.text((p0[0] + p1[0]) / 2, (p0[1] + p1[1]) / 2 + 0.08, label, ha="center", va="bottom", fontsize=8,
                    style="italic", color="#333")
    ax.text(0.1, 6.25, "bigsmall_jax: one folder per concern", fontsize=12, weight="bold", va="top")
    ax.text(0.1, 0.12, ENTRY, fontsize=8.2, va="bottom")
    return save_png(fig, out)


if __name__ == "__main__":
    print(main())
