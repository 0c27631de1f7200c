"""Draw the workflow diagram shown in the README (docs/images/workflow.png)."""
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyBboxPatch

STEPS = [
    ("Tomograms", "SetOfTomograms\nbinned,\n~14 Å/voxel", "#d9d9d9"),
    ("DoG picking", "template-free,\nover-picks on\npurpose", "#9ecae1"),
    ("Extraction", "24³ boxes,\nnormalised\nto N(0,1)", "#9ecae1"),
    ("DISCA", "YOPO CNN\n⇄ GMM + BIC,\nK automatic", "#fdae6b"),
    ("Inspect", "t-SNE, averages,\ndecoded centres,\nre-embedding", "#a1d99b"),
    ("Export", "chosen clusters:\nsubtomograms\n+ coordinates", "#9ecae1"),
    ("RELION", "reliontomo:\naverage,\nRELION 5", "#d9d9d9"),
]


def main(path):
    fig, ax = plt.subplots(figsize=(14, 2.6), dpi=110)
    ax.set_xlim(0, len(STEPS) * 2)
    ax.set_ylim(0, 2.2)
    ax.axis("off")
    for i, (title, text, colour) in enumerate(STEPS):
        x = i * 2 + 0.1
        ax.add_patch(FancyBboxPatch((x, 0.3), 1.6, 1.6, boxstyle="round,pad=0.05",
                                    fc=colour, ec="#444444"))
        ax.text(x + 0.8, 1.55, title, ha="center", va="center", fontsize=11, weight="bold")
        ax.text(x + 0.8, 0.85, text, ha="center", va="center", fontsize=8.5)
        if i < len(STEPS) - 1:
            ax.annotate("", xy=(x + 1.95, 1.1), xytext=(x + 1.7, 1.1),
                        arrowprops=dict(arrowstyle="->", lw=1.5))
    ax.text(len(STEPS), 0.05, "disca-engine runs in its own environment (TensorFlow); "
            "Scipion keeps the sets, links and provenance", ha="center", fontsize=8, style="italic")
    fig.savefig(path, bbox_inches="tight")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images/workflow.png")
