"""bench.py as a user meets it: listing, and clear errors with exit code 2 for bad input."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import list_variants
from harness.gpu import gpu_unavailable_reason
from harness.registry import all_variants

ROOT = Path(__file__).resolve().parents[2]


def bench(*args, env=None):
    return subprocess.run([sys.executable, "bench.py", *args], cwd=ROOT, capture_output=True, text=True,
                          env=None if env is None else os.environ | env)


def test_list_shows_every_variant_from_its_header():
    result = bench("--list")
    assert result.returncode == 0
    for variant in all_variants():
        assert variant.header.run in result.stdout
        assert variant.name in result.stdout


@pytest.mark.parametrize("args,message", [
    (["softmaxx"], "unknown layer 'softmaxx'; valid layers: "),
    (["layernorm", "--variant", "42"], "no variant 42 in layernorm; valid variants: layernorm.forward: 1"),
    (["layernorm.upward"], "no pass 'upward'"),
    ([], "name a layer"),
    (["layernorm", "--repeats", "0"], "--repeats must be at least 1"),
    (["layernorm", "--ncu-set", "full"], "--ncu-set only applies to --ncu"),
    (["layernorm", "--ncu", "--emulate"], "--ncu profiles on the GPU: leave out --emulate"),
    (["layernorm", "--accesses"], "--accesses counts memory transactions on the CPU emulator: add --emulate"),
])
def test_bad_input_exits_2_with_message(args, message):
    result = bench(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_dtype_is_rejected_by_argparse():
    result = bench("layernorm", "--dtype", "fp8")
    assert result.returncode == 2 and "invalid choice: 'fp8'" in result.stderr


def test_shapes_parse_and_bad_ones_name_the_expected_dims():
    from harness.cli import parse_shape
    from harness.errors import UserError
    from kernels.layernorm.forward import FORWARD

    assert parse_shape("B=2,T=3,C=64", FORWARD) == (2, 3, 64)
    assert parse_shape("2, 3, 64", FORWARD) == (2, 3, 64)
    for bad in ("2,3", "B=2,T=3,X=4", "a,b,c", "0,3,64"):
        with pytest.raises(UserError, match="shape"):
            parse_shape(bad, FORWARD)


def test_without_gpu_timing_says_what_still_works(tmp_path):
    if gpu_unavailable_reason() is None:
        pytest.skip("a GPU is present")
    target = tmp_path / "out.json"
    result = bench("layernorm", "--json", str(target))
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and "--compile-only" in result.stderr
    assert not target.exists(), "nothing half-written on failure"


def test_without_gpu_ncu_says_what_still_works():
    if gpu_unavailable_reason() is None:
        pytest.skip("a GPU is present")
    result = bench("layernorm", "--variant", "5", "--ncu")
    assert result.returncode == 2
    assert "needs a CUDA GPU" in result.stderr and "--emulate" in result.stderr


def test_compile_only_builds_selected_variants_without_gpu():
    result = bench("layernorm", "--variant", "1", "--compile-only")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok      layernorm.forward/1 fp32 sm_90" in result.stdout


def test_compile_only_arch_and_jobs_pick_what_is_built(tmp_path):
    env = {"WORKBENCH_CACHE": str(tmp_path)}  # a cold cache: the worker processes really compile
    result = bench("layernorm", "--pass", "forward", "--variant", "1", "--variant", "2", "--compile-only",
                   "--arch", "sm_90", "--jobs", "2", "--dtype", "fp32", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    built = sorted(line.split()[1:] for line in result.stdout.splitlines() if line.startswith("ok"))
    assert built == [["layernorm.forward/1", "fp32", "sm_90"], ["layernorm.forward/2", "fp32", "sm_90"]]
    assert len(list(tmp_path.glob("*-fp32-sm_90-*.cubin"))) == 2


def test_arch_without_compile_only_is_refused():
    result = bench("layernorm", "--arch", "sm_90")
    assert result.returncode == 2 and "--arch only applies to --compile-only" in result.stderr


def test_markdown_list_has_a_row_per_variant():
    table = list_variants(markdown=True).splitlines()
    assert len(table) == 2 + len(all_variants())


@pytest.mark.emulated
def test_emulate_checks_on_the_cpu():
    result = bench("layernorm", "--variant", "1", "--emulate", "--shape", "1,3,64", "--block-size", "32")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok      layernorm.forward/1 fp32 (B=1,T=3,C=64) {'block_size': 32}" in result.stdout
    assert "ok      layernorm.backward/1 fp32" in result.stdout


@pytest.mark.emulated
def test_emulate_reports_a_launch_the_emulator_rejects_and_checks_the_rest(monkeypatch, capsys):
    """A hang, a fault or a bad launch is one configuration's failure, not the end of the command."""
    from harness import check, cli
    from harness.emulator import EmulationError

    real = check.check_variant

    def faulting_at_64_threads(variant, case, config):
        if config["block_size"] == 64:
            raise EmulationError("layernorm_forward grid=(1,) block=(64,): block (0,0,0) thread 3: memory fault")
        return real(variant, case, config)

    monkeypatch.setattr(check, "check_variant", faulting_at_64_threads)
    code = cli.main(["layernorm.forward", "--variant", "1", "--emulate", "--shape", "1,3,64", "--dtype", "fp32",
                     "--block-size", "32", "64", "128"])
    out = capsys.readouterr().out
    assert code == cli.EXIT_CHECK_FAILED
    assert "FAILED  layernorm.forward/1 fp32 (B=1,T=3,C=64) {'block_size': 64}: layernorm_forward" in out
    assert "thread 3: memory fault" in out
    for block_size in (32, 128):
        assert f"ok      layernorm.forward/1 fp32 (B=1,T=3,C=64) {{'block_size': {block_size}}}" in out


def test_bad_shape_from_the_command_line_exits_2():
    result = bench("layernorm", "--emulate", "--shape", "1,3")
    assert result.returncode == 2
    assert "give 3 integers B,T,C" in result.stderr


@pytest.mark.emulated
def test_emulate_without_a_shape_takes_the_smallest_one_each_variant_accepts():
    """The fused tensor-core variants refuse the tiny head sizes the test shapes start with."""
    result = bench("flash_attention", "--variant", "2", "--emulate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok      flash_attention.forward/2 bf16 (B=1,T=70,NH=2,HS=64)" in result.stdout
    assert "ok      flash_attention.backward/2 bf16 (B=1,T=70,NH=2,HS=64)" in result.stdout



@pytest.mark.emulated
def test_the_timing_command_writes_json_saves_and_exits_1_on_a_wrong_variant(tmp_path, monkeypatch, capsys):
    """`bench.py LAYER` past its GPU check, with the GPU's services stood in for: the runner on the CPU
    emulator, fixed ceilings, results saved to a temporary folder. What is tested is the command:
    which runs it makes, --json, --save, the table, and exit code 1 when a variant fails its check."""
    from dataclasses import replace

    from harness import cli, gpu, report, runner
    from harness.ceilings import gpu_slug
    from harness.registry import find_ops

    ceilings = {"gpu": "CPU emulator", "copy_gbps": 100.0, "gemm_tflops": {"fp32": 1.0, "bf16": 2.0}}
    monkeypatch.setattr(gpu, "require_gpu", lambda: None)
    monkeypatch.setattr("harness.ceilings.ceilings", lambda: ceilings)
    emulated, save = runner.bench_op, report.save_results
    monkeypatch.setattr(runner, "bench_op", lambda *a, **k: emulated(*a, **(k | {"device": "cpu", "warmup": 1})))
    monkeypatch.setattr(report, "save_results", lambda runs: save(runs, tmp_path))

    argv = ["layernorm", "--pass", "forward", "--shape", "2,3,64", "--block-size", "128", "--repeats", "2",
            "--no-compile-baseline", "--json", str(tmp_path / "run.json")]
    assert cli.main(argv + ["--dtype", "all", "--save"]) == 0
    out = capsys.readouterr().out
    assert "layernorm.forward fp32" in out and "layernorm.forward bf16" in out and "torch eager" in out
    runs = report.load_results(tmp_path / "run.json")
    assert sorted(runs) == ["layernorm.forward bf16 B=2,T=3,C=64", "layernorm.forward fp32 B=2,T=3,C=64"]
    assert all(run.passed and len(run.rows) == 1 + 6 for run in runs.values())  # eager, six variants
    [environment] = {run.environment["gpu"] for run in runs.values()}
    assert report.load_results(tmp_path / f"{gpu_slug(environment)}.json").keys() == runs.keys()

    [op] = find_ops("layernorm", "forward")
    launches_nothing = replace(op.variants[0], launch=lambda k, a, s, **config: None)  # the poison stays
    monkeypatch.setattr(op, "variants", [launches_nothing, *op.variants[1:]])
    assert cli.main(argv + ["--variant", "1", "--dtype", "fp32"]) == 1
    assert "correctness failures in: layernorm.forward fp32" in capsys.readouterr().out


def test_arch_native_asks_nvidia_smi_and_explains_when_there_is_no_gpu(monkeypatch):
    import subprocess

    from harness import cli

    class Answer:
        stdout = "9.0\n"

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: Answer())
    assert cli.native_arch() == "sm_90"

    def no_smi(*a, **k):
        raise FileNotFoundError("nvidia-smi")

    monkeypatch.setattr(subprocess, "run", no_smi)
    with pytest.raises(cli.UserError, match="--arch native: nvidia-smi names no GPU here; give an architecture"):
        cli.native_arch()


@pytest.mark.emulated
def test_accesses_prints_each_line_s_memory_transactions():
    result = bench("layernorm.forward", "--variant", "1", "--emulate", "--accesses", "--dtype", "fp32")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok      layernorm.forward/1 fp32") and "block_size" in lines[0]
    assert sum(line.startswith("ok") for line in lines) == 1  # the default launch configuration only
    assert lines[1].split() == ["kernel", "line", "access", "requests", "per", "request", "ideal", "efficiency"]
    row_walk = [line for line in lines if "1_thread_per_row.cu:" in line and "global load 4B" in line]
    assert row_walk and any(line.endswith(" 13%") for line in row_walk)
    assert "global loads 15% efficient" in result.stdout
