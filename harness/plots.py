"""Bar charts of a run: each row's achieved fraction of the measured ceiling (used by the notebooks)."""
from __future__ import annotations

from harness.runner import Run


def plot_run(run: Run, ax=None):
    """Horizontal bars of % of ceiling per timed row (baselines hatched); returns the matplotlib Axes."""
    import matplotlib.pyplot as plt

    timed = [row for row in run.rows if row.pct_of_ceiling is not None]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 0.35 * len(timed) + 1.2))
    labels = [row.label + (" " + " ".join(f"{k}={v}" for k, v in row.config.items()) if row.config else "")
              for row in timed]
    values = [row.pct_of_ceiling for row in timed]
    bars = ax.barh(range(len(timed)), values, color=["tab:gray" if r.kind == "baseline" else "tab:blue" for r in timed])
    for bar, row in zip(bars, timed):
        if row.kind == "baseline":
            bar.set_hatch("//")
        ax.text(bar.get_width() + 1, bar.get_y() + bar.get_height() / 2, f"{row.median_us:.1f} us",
                va="center", fontsize=8)
    ax.set_yticks(range(len(timed)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(100, color="black", linewidth=0.8)
    ceiling = "copy bandwidth" if run.bound == "memory" else "cuBLAS GEMM rate"
    ax.set_xlabel(f"% of measured {ceiling}")
    ax.set_xlim(0, max(110, max(values, default=0) + 15))
    ax.set_title(f"{run.op} {run.dtype} " + ",".join(f"{k}={v}" for k, v in run.shape.items()), fontsize=10)
    return ax
