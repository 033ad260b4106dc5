"""harness/runner.py end to end on the CPU emulator: the code path of `python bench.py LAYER` (check,
time, re-check, rate, compare with baselines, save, render) without a GPU. The times are the
emulator's wall clock and mean nothing; what is checked is which rows are timed and how they are
reported. Planted variants check that a wrong kernel is failed and never timed."""
import math
from dataclasses import replace

import pytest
import torch

from harness.registry import all_ops, find_ops
from harness.report import load_results, markdown_run, print_run, save_results
from harness.runner import Run, bench_op

CEILINGS = {"gpu": "CPU emulator", "copy_gbps": 100.0, "gemm_tflops": {"fp32": 1.0, "bf16": 2.0}}
SMALL = (2, 3, 64)  # B, T, C: a few rows, one warp's worth of channels twice over


def layernorm_forward():
    [op] = find_ops("layernorm", "forward")
    return op


def run_small(variants, dims=SMALL, **kwargs):
    op = layernorm_forward()
    options = dict(block_sizes=[128], baselines=["torch eager"], repeats=3, warmup=1, ceilings=CEILINGS,
                   device="cpu")
    return bench_op(op, "fp32", dims, variants, **(options | kwargs))


def planted(variant, number, launch):
    """A copy of `variant` (same kernels, same header) launched by `launch(real_launch, k, a, s, **config)`."""
    def wrapped(k, a, s, **config):
        launch(variant.launch, k, a, s, **config)

    return replace(variant, number=number, launch=wrapped)


@pytest.mark.emulated
def test_every_config_is_checked_timed_and_rated_against_the_baseline():
    op = layernorm_forward()
    run = run_small(op.variants)
    assert run.passed and run.op == "layernorm.forward" and run.shape == {"B": 2, "T": 3, "C": 64}
    assert run.bytes == op.bytes_moved(op.make_dims(SMALL), "fp32")
    baseline, *rows = run.rows
    assert (baseline.kind, baseline.label, baseline.status) == ("baseline", "torch eager", "ok")
    assert [row.variant for row in rows] == [v.number for v in op.variants]
    for row in [baseline, *rows]:
        assert row.status == "ok", row.note
        assert row.config == ({} if row is baseline else {"block_size": 128})
        timing = row.timing
        assert timing["repeats"] == 3 and timing["q1_us"] <= timing["median_us"] <= timing["q3_us"]
        assert math.isclose(row.gbps, run.bytes / (timing["median_us"] * 1e-6) / 1e9)
        assert math.isclose(row.pct_of_ceiling, 100 * row.gbps / CEILINGS["copy_gbps"])
        assert math.isclose(row.speedup["torch eager"], baseline.median_us / timing["median_us"])
    for row in rows:
        assert 0 <= row.tolerance_used <= 1 and row.max_abs_err < 1e-4
    assert run.environment["gpu"].startswith("CPU emulator")
    assert Run.from_dict(run.as_dict()) == run


@pytest.mark.emulated
def test_default_config_only_times_each_variant_once():
    op = layernorm_forward()
    run = run_small(op.variants, block_sizes=None, baselines=[], default_config_only=True)
    assert [(row.variant, row.config) for row in run.rows] == [(v.number, v.configs[0]) for v in op.variants]


@pytest.mark.emulated
def test_a_refused_shape_is_reported_and_not_timed():
    op = layernorm_forward()
    shape = (2, 3, 62)  # C = 62 is not a whole number of 128-bit (4-float) packs
    refusing = [v for v in op.variants if v.refusal(op.make_dims(shape), "fp32", {"block_size": 128})]
    assert [v.number for v in refusing] == [5, 6]
    run = run_small(refusing, dims=shape, baselines=[])
    for row in run.rows:
        assert row.status == "refused" and row.note and row.timing is None and not row.speedup
    assert run.passed  # a refusal is a declared limit, not a failure


@pytest.mark.emulated
def test_a_wrong_variant_fails_its_check_and_is_never_timed():
    first = layernorm_forward().variants[0]

    def drop_the_last_row(real, k, a, s, **config):
        real(k, a, s._replace(T=s.T - 1), **config)  # rows of the last sequence position stay poisoned

    run = run_small([planted(first, 91, drop_the_last_row)])
    _, row = run.rows
    assert row.status == "failed" and row.timing is None and row.gbps is None and not row.speedup
    assert "out" in row.note and "nan" in row.note.lower()
    assert not run.passed


@pytest.mark.emulated
def test_a_variant_that_goes_wrong_while_timed_fails_the_recheck():
    """Correct on the first call, wrong on later ones (as a kernel that depends on stale scratch or a
    race might be): the check after timing catches it and the time is not reported."""
    first = layernorm_forward().variants[0]
    calls = []

    def right_once(real, k, a, s, **config):
        real(k, a, s, **config)
        calls.append(1)
        if len(calls) > 1:
            a.out.add_(1.0)

    run = run_small([planted(first, 92, right_once)])
    _, row = run.rows
    assert row.status == "failed" and "after timing" in row.note and row.gbps is None
    assert len(calls) == 1 + 1 + 3  # the check, one warm-up, three timed calls; the re-check does not poison
    # (the re-check's own call is the fifth; it found `out` off by one)
    assert not run.passed


@pytest.mark.emulated
def test_a_bench_run_saves_renders_and_reloads(tmp_path):
    op = layernorm_forward()
    run = run_small(op.variants[:2])
    json_path, md_path = save_results([run], tmp_path)
    [(key, reloaded)] = load_results(json_path).items()
    assert key == run.key and reloaded == run
    markdown = md_path.read_text()
    assert "layernorm.forward" in markdown and "torch eager" in markdown and markdown_run(run) in markdown
    from rich.console import Console

    console = Console(record=True, width=200)
    print_run(run, console)
    text = console.export_text()
    assert all(row.label in text for row in run.rows)
    from harness.summary import best_variant, describe

    best = best_variant(run)
    assert best.median_us == min(row.median_us for row in run.rows if row.kind == "variant")
    summary = describe(run)
    assert summary.startswith(f"{run.key}: best {best.label} [block_size=128]") and "vs torch eager" in summary


@pytest.mark.parametrize("op", all_ops(), ids=lambda op: op.id)
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_every_eager_baseline_runs_on_the_op_inputs(op, dtype):
    """The baselines are only timed on a GPU; their factories and calls are device-agnostic, so a
    wrong argument or shape shows here first, at the smallest test shape."""
    from harness.check import Case

    dims = min(op.shapes, key=op.size)
    case = Case(op, dtype, dims, device="cpu")
    call = op.baselines["torch eager"](case.inputs, case.dims)
    result = call()  # in-place baselines (AdamW) return None
    outputs = result if isinstance(result, (tuple, list)) else [result]
    for tensor in outputs:
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            assert torch.isfinite(tensor).all()


def test_the_recorded_commit_ignores_results_and_can_be_given(tmp_path, monkeypatch):
    """A GPU run rewrites results/ layer by layer: that must not mark the later layers' runs "+dirty".
    A copy of the tree without .git (a lent GPU machine) is told its commit by WORKBENCH_COMMIT."""
    import subprocess

    from harness import runner

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "gpu.json").write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "first")
    monkeypatch.setattr(runner, "ROOT", tmp_path)
    monkeypatch.delenv("WORKBENCH_COMMIT", raising=False)
    clean = runner.git_commit()
    assert len(clean) == 12 and "+" not in clean
    (tmp_path / "results" / "gpu.json").write_text('{"runs": []}')
    assert runner.git_commit() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert runner.git_commit() == clean + "+dirty"
    monkeypatch.setenv("WORKBENCH_COMMIT", "0123456789ab")
    assert runner.git_commit() == "0123456789ab"
    monkeypatch.delenv("WORKBENCH_COMMIT")
    (tmp_path / ".git").rename(tmp_path / "moved-git")  # a copy of the tree without its history
    assert runner.git_commit() == "unknown"
