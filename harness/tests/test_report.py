"""Results files: merging runs per GPU, rendering markdown, atomic writes, unreadable files."""
import json

import pytest

from harness.report import load_results, render_markdown, save_results, write_json
from harness.runner import Row, Run

CEILINGS = {"gpu": "Fake GPU 9000", "copy_gbps": 3000.0, "gemm_tflops": {"fp32": 50.0, "bf16": 700.0}}
ENV = {"gpu": "Fake GPU 9000", "driver_cuda": "13.0", "torch": "2.11", "torch_cuda": "13.0", "cupy": "14.2",
       "nvrtc": "13.0", "commit": "abc"}


def make_run(dtype="fp32", time_us=20.0):
    rows = [
        Row(kind="baseline", label="torch eager", timing={"median_us": 32.0, "q1_us": 31.0, "q3_us": 33.0,
                                                           "min_us": 30.0, "repeats": 10}, gbps=1500.0),
        Row(kind="variant", label="5: vectorized", variant=5, config={"block_size": 256},
            timing={"median_us": time_us, "q1_us": time_us, "q3_us": time_us, "min_us": time_us, "repeats": 10},
            gbps=2400.0, pct_of_ceiling=80.0, speedup={"torch eager": 32.0 / time_us}, tolerance_used=0.1),
        Row(kind="variant", label="4: registers", variant=4, config={"block_size": 64}, status="refused",
            note="C too large"),
    ]
    return Run(op="layernorm.forward", dtype=dtype, shape={"B": 8, "T": 1024, "C": 768}, bytes=50_000_000,
               flops=1, bound="memory", ceilings=CEILINGS, environment=ENV, rows=rows)


def test_save_merges_by_op_dtype_shape_and_renders(tmp_path):
    save_results([make_run("fp32"), make_run("bf16")], tmp_path)
    save_results([make_run("fp32", time_us=16.0)], tmp_path)
    runs = load_results(tmp_path / "fake-gpu-9000.json")
    assert sorted(runs) == ["layernorm.forward bf16 B=8,T=1024,C=768", "layernorm.forward fp32 B=8,T=1024,C=768"]
    assert runs["layernorm.forward fp32 B=8,T=1024,C=768"].rows[1].median_us == 16.0
    markdown = (tmp_path / "fake-gpu-9000.md").read_text()
    assert "2.00x" in markdown and "REFUSED" in markdown and "C too large" in markdown
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake-gpu-9000.json", "fake-gpu-9000.md"]


def test_json_round_trip(tmp_path):
    path = tmp_path / "run.json"
    write_json([make_run()], path)
    loaded = json.loads(path.read_text())["runs"][0]
    assert Run.from_dict(loaded).rows[1].config == {"block_size": 256}


def test_unreadable_results_file_says_what_to_do(tmp_path):
    path = tmp_path / "fake-gpu-9000.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="move it aside"):
        load_results(path)


def test_render_lists_ceilings():
    text = render_markdown([make_run()])
    assert "copy 3000 GB/s" in text and "bf16 700 TFLOP/s" in text


def test_plot_has_a_bar_per_timed_row():
    import matplotlib

    matplotlib.use("Agg")
    from harness.plots import plot_run

    ax = plot_run(make_run())
    assert len(ax.patches) == 1  # the refused row and the unrated baseline have no bar
    assert ax.patches[0].get_width() == 80.0


def test_piped_output_is_one_aligned_line_per_row():
    """A rich table squeezed into a pipe's 80 columns wraps every cell; piped output is plain text."""
    import io

    from rich.console import Console

    from harness.report import print_run

    buffer = io.StringIO()
    print_run(make_run(), Console(file=buffer, width=80))
    title, header, rule, *rows = buffer.getvalue().splitlines()
    assert title.startswith("layernorm.forward fp32") and header.split()[:2] == ["variant", "config"]
    assert len(rows) == 3 and all(len(line) > 80 for line in rows[:2])  # not wrapped at the width
    assert rows[1].split() == ["5:", "vectorized", "block_size=256", "20.00", "(0.00)", "2400", "-", "80.0",
                               "1.60x", "-", "ok", "10%", "tol"]
    assert header.index("vs eager") + len("vs eager") == rows[1].index("1.60x") + len("1.60x")  # right-aligned
