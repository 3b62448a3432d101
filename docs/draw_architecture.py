"""Draws docs/architecture.png, the BigSmall architecture figure used in the README.

    python docs/draw_architecture.py
"""

from pathlib import Path

from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from bigsmall_jax.figures import new_figure, save_png


def box(ax, x, y, w, h, text, color):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="#333",
                                lw=1.2))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5)


def arrow(ax, x0, y0, x1, y1):
    ax.add_patch(FancyArrowPatch((x0, y0), (x1, y1), arrowstyle="-|>", mutation_scale=12, lw=1.2, color="#333"))


OUT = Path(__file__).with_name("architecture.png")


def main(out: Path = OUT):
    fig = new_figure(12, 4.6, dpi=130)
    ax = fig.add_subplot()
    ax.set_xlim(0, 12.4)
    ax.set_ylim(0, 4.6)
    ax.axis("off")
    big, small, head = "#cfe2ff", "#d1f0d8", "#ffe5b4"
    # Big branch
    box(ax, 0.1, 3.0, 1.7, 1.0, "Big input\n(N*T,144,144,3)\nstandardized frames\n→ first frame of clip", "#eee")
    stages = ["conv 32, conv 32\navg-pool 2\ndropout .25", "conv 32, conv 64\navg-pool 2\ndropout .5",
              "conv 64, conv 64\navg-pool 4\ndropout .5"]
    for i, s in enumerate(stages):
        box(ax, 2.1 + i * 1.75, 3.0, 1.55, 1.0, s, big)
    for x in (1.8, 3.65, 5.4):
        arrow(ax, x, 3.5, x + 0.3, 3.5)
    box(ax, 7.45, 3.0, 1.5, 1.0, "(N,9,9,64)\nrepeat ×T\n→ (N*T,9,9,64)", big)
    arrow(ax, 7.15, 3.5, 7.45, 3.5)
    # Small branch
    box(ax, 0.1, 0.6, 1.7, 1.0, "Small input\n(N*T,9,9,3)\ndiff-normalized\nframes", "#eee")
    for i, f in enumerate((32, 32, 32, 64)):
        box(ax, 2.1 + i * 1.3, 0.6, 1.1, 1.0, f"WTSM\n(roll ±1)\nconv {f}", small)
    for i in range(4):
        arrow(ax, 1.8 + i * 1.3, 1.1, 2.1 + i * 1.3, 1.1)
    # Fusion + heads
    box(ax, 9.3, 1.8, 1.0, 1.0, "sum\n(N*T,9,9,64)\nflatten\n5184", "#f3d1f4")
    arrow(ax, 8.95, 3.5, 9.6, 2.8)
    arrow(ax, 7.1, 1.1, 9.6, 1.8)
    for i, (name, size) in enumerate((("AU", "12 logits"), ("pulse", "1 (BVP)"), ("resp.", "1"))):
        box(ax, 10.75, 3.2 - i * 1.2, 1.5, 0.8, f"{name} head\ndense 128, ReLU\ndense {size}", head)
        arrow(ax, 10.3, 2.3, 10.75, 3.6 - i * 1.2)
    ax.text(0.1, 4.35, "BigSmall: Big branch on 1 of every T frames (spatial detail, AUs); Small branch on every "
            "frame (temporal detail, pulse and respiration)", fontsize=10, weight="bold")
    save_png(fig, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
