"""Show runs as tables (rich on a terminal, plain text when piped) and keep them in results/.

results/<gpu>.json holds the latest run of every (op, dtype, shape) measured on that GPU;
results/<gpu>.md is rendered from it. Both are written atomically.
"""
from __future__ import annotations

import json
from pathlib import Path

from harness.atomic import atomic_write
from harness.runner import Row, Run

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
COLUMNS = ("variant", "config", "time us (IQR)", "GB/s", "TFLOP/s", "% ceiling", "vs eager", "vs compile", "check")


def _fmt(value, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def row_cells(row: Row) -> list[str]:
    config = " ".join(f"{k}={v}" for k, v in row.config.items())
    if row.status in ("refused", "unavailable", "failed"):
        note = row.note.splitlines()[0] if row.note else ""
        return [row.label, config, row.status.upper(), "", "", "", "", "", note]
    timing = row.timing
    time_cell = f"{timing['median_us']:.2f} ({timing['q3_us'] - timing['q1_us']:.2f})"
    check = "baseline" if row.kind == "baseline" else f"ok {_fmt(row.tolerance_used and 100 * row.tolerance_used, '.0f')}% tol"
    return [row.label, config, time_cell, _fmt(row.gbps, ".0f"), _fmt(row.tflops, ".2f"),
            _fmt(row.pct_of_ceiling, ".1f"), _speedup(row, "torch eager"), _speedup(row, "torch.compile"), check]


def _speedup(row: Row, baseline: str) -> str:
    value = row.speedup.get(baseline)
    return "-" if value is None else f"{value:.2f}x"


def run_title(run: Run) -> str:
    shape = ", ".join(f"{k}={v}" for k, v in run.shape.items())
    ceiling = (f"copy {run.ceilings['copy_gbps']:.0f} GB/s" if run.bound == "memory"
               else f"GEMM {run.ceilings['gemm_tflops'][run.dtype]:.0f} TFLOP/s")
    return (f"{run.op} {run.dtype} ({shape}) on {run.environment['gpu']}: {run.bytes / 1e6:.1f} MB moved, "
            f"ceiling {ceiling}")


def plain_table(run: Run) -> str:
    """The run as aligned text with nothing wrapped or cut, for logs and pipes."""
    rows = [list(COLUMNS)] + [row_cells(row) for row in run.rows]
    widths = [max(len(cells[i]) for cells in rows) for i in range(len(COLUMNS))]
    left = {"variant", "config", "check"}

    def line(cells):
        return "  ".join(cell.ljust(w) if name in left else cell.rjust(w)
                         for name, cell, w in zip(COLUMNS, cells, widths)).rstrip()

    return "\n".join([run_title(run), line(rows[0]), "  ".join("-" * w for w in widths)] +
                     [line(cells) for cells in rows[1:]])


def print_run(run: Run, console=None) -> None:
    """A rich table on a terminal or in a notebook; aligned plain text when the output goes to a pipe
    or a file (a rich table squeezed to a pipe's 80 columns wraps every cell)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not (console.is_terminal or console.is_jupyter):
        console.print(plain_table(run), soft_wrap=True, markup=False, highlight=False)
        for row in run.rows:
            if row.status == "failed":
                console.print(f"FAILED {row.note}", soft_wrap=True, markup=False, highlight=False)
        return
    table = Table(title=run_title(run), title_justify="left")
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("variant", "config", "check") else "right")
    for row in run.rows:
        style = {"failed": "bold red", "refused": "dim", "unavailable": "dim"}.get(row.status)
        table.add_row(*row_cells(row), style=style or ("cyan" if row.kind == "baseline" else None))
    console.print(table)
    for row in run.rows:
        if row.status == "failed":
            console.print(f"[bold red]FAILED[/] {row.note}", markup=True, highlight=False)


def markdown_run(run: Run) -> str:
    lines = [f"### {run_title(run)}", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in run.rows:
        cells = [cell.replace("|", "\\|") for cell in row_cells(row)]
        lines.append("| " + " | ".join(cells) + " |")
    env = run.environment
    lines += ["", f"driver CUDA {env['driver_cuda']}, torch {env['torch']} (CUDA {env['torch_cuda']}), "
                  f"CuPy {env['cupy']}, NVRTC {env['nvrtc']}, commit {env['commit']}", ""]
    return "\n".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(text)


def write_json(runs: list[Run], path: Path) -> None:
    _write_atomic(Path(path), json.dumps({"runs": [run.as_dict() for run in runs]}, indent=1) + "\n")


def load_results(path: Path) -> dict[str, Run]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        runs = [Run.from_dict(item) for item in data["runs"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{path} is not a results file this version can read ({exc}); move it aside") from exc
    return {run.key: run for run in runs}


def save_results(runs: list[Run], results_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Merge `runs` into results/<gpu>.json (replacing earlier runs of the same op, dtype and shape)
    and re-render results/<gpu>.md."""
    from harness.ceilings import gpu_slug

    by_gpu: dict[str, list[Run]] = {}
    for run in runs:
        by_gpu.setdefault(gpu_slug(run.environment["gpu"]), []).append(run)
    written = ()
    for slug, new_runs in by_gpu.items():
        json_path, md_path = results_dir / f"{slug}.json", results_dir / f"{slug}.md"
        merged = load_results(json_path)
        merged.update({run.key: run for run in new_runs})
        ordered = [merged[key] for key in sorted(merged)]
        write_json(ordered, json_path)
        _write_atomic(md_path, render_markdown(ordered))
        written = (json_path, md_path)
    return written


def render_markdown(runs: list[Run]) -> str:
    if not runs:
        return "# Results\n\nNo runs yet.\n"
    first = runs[0]
    ceilings = first.ceilings
    header = [
        f"# Results on {first.environment['gpu']}", "",
        "Generated by `python bench.py ... --save` (see `make gpu`); do not edit by hand.",
        f"Measured ceilings: copy {ceilings['copy_gbps']:.0f} GB/s, GEMM fp32 {ceilings['gemm_tflops']['fp32']:.1f} "
        f"TFLOP/s, bf16 {ceilings['gemm_tflops']['bf16']:.0f} TFLOP/s ({ceilings.get('method', '')}).",
        "Times are medians over calls with a cold L2; IQR in brackets. Speed-ups are against the baselines "
        "measured in the same run.", ""]
    return "\n".join(header + [markdown_run(run) for run in runs])
