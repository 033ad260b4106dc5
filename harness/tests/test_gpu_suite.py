"""The budgeted GPU suite's driver, on the CPU with stand-in commands: stages run in order, a stage
that overruns its share is stopped (its children too), stages with no time left are skipped, and
the pack holds results and logs."""
import sys
import tarfile
import time

import pytest

from harness.gpu_suite import ROOT, Stage, main, pack, run_stages


def python(code):
    return [sys.executable, "-c", code]


def test_stages_run_in_order_and_report_how_each_ended(tmp_path):
    after_calls = []
    chosen = [
        Stage("first", 30, [("one", python("print('hello')"))], after=after_calls.append),
        Stage("second", 30, [("two", python("import sys; sys.exit(3)")), ("three", python("print('still runs')"))]),
    ]
    outcomes = run_stages(chosen, tmp_path, budget_s=60, reserve_s=0, min_stage_s=1)
    assert [o["status"] for o in outcomes] == ["ok", "failed: two exit 3"]
    assert (tmp_path / "one.log").read_text().strip() == "hello"
    assert "still runs" in (tmp_path / "three.log").read_text()  # a failed bench does not stop the others
    assert after_calls == [tmp_path]  # only the stage that succeeded


def test_a_failing_after_step_fails_its_stage_not_the_suite(tmp_path):
    def broken(logs):
        raise OSError("no results folder")

    chosen = [Stage("train", 30, [("train", python("pass"))], after=broken), Stage("next", 30, [("n", python("pass"))])]
    outcomes = run_stages(chosen, tmp_path, budget_s=60, reserve_s=0, min_stage_s=1)
    assert outcomes[0]["status"] == "failed: after the stage: OSError: no results folder"
    assert outcomes[1]["status"] == "ok"


def test_the_sanitizer_sees_every_buffer_as_its_own_allocation():
    from harness.gpu_suite import sanitized

    command = sanitized("racecheck")
    assert command[:2] == ["env", "PYTORCH_NO_CUDA_MEMORY_CACHING=1"]
    assert command[command.index("--tool") + 1] == "racecheck" and "--report-api-errors" in command
    assert "--shared-memory-only" in command and "--shared-memory-only" not in sanitized("memcheck")


def test_racecheck_skips_only_variants_without_shared_memory():
    """racecheck finds shared-memory hazards only: a variant that declares none is left to memcheck."""
    from harness.registry import find_ops
    from harness.sanitize import sanitized_checks, uses_shared_memory

    [forward] = find_ops("layernorm", "forward")
    assert uses_shared_memory(forward.variant_by_number(2))  # the block-wide reduction
    assert not uses_shared_memory(forward.variant_by_number(3))  # warp shuffles only
    everything = {v.id for v, *_ in sanitized_checks(first_config=True)}
    raced = {v.id for v, *_ in sanitized_checks(first_config=True, shared_memory_only=True)}
    assert raced < everything and "layernorm.forward/2" in raced and "layernorm.forward/3" not in raced
    assert all(uses_shared_memory(v) for v, *_ in sanitized_checks(first_config=True, shared_memory_only=True))


def test_a_missing_program_fails_its_stage_not_the_suite(tmp_path):
    chosen = [Stage("sanitize", 30, [("sanitize", ["/nonexistent/compute-sanitizer", "--tool", "memcheck"])]),
              Stage("after", 30, [("after", python("print('ran')"))])]
    outcomes = run_stages(chosen, tmp_path, budget_s=60, reserve_s=0, min_stage_s=1)
    assert [o["status"] for o in outcomes] == ["failed: sanitize exit 127", "ok"]
    assert "could not start /nonexistent/compute-sanitizer" in (tmp_path / "sanitize.log").read_text()


def test_an_overrunning_stage_is_stopped_with_its_children(tmp_path):
    marker = tmp_path / "child-finished"
    # The child sleeps longer than the stage may take; if the process group were not killed it
    # would write the marker afterwards.
    child = f"import time, pathlib; time.sleep(3); pathlib.Path({str(marker)!r}).write_text('x')"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    started = time.monotonic()
    outcomes = run_stages([Stage("slow", 1, [("slow", python(parent))])], tmp_path, budget_s=60, reserve_s=0,
                          min_stage_s=0.5)
    assert outcomes[0]["status"] == "timed out" and time.monotonic() - started < 2.5
    assert "stopped after" in (tmp_path / "slow.log").read_text()
    time.sleep(3)
    assert not marker.exists()


def test_stages_without_time_left_are_skipped(tmp_path):
    now = [0.0]
    chosen = [Stage("a", 100, [("a", python("pass"))]), Stage("b", 100, [("b", python("pass"))])]

    def clock():  # every reading of the clock is 25 s later: stage a appears to take 50 s
        now[0] += 25
        return now[0]

    outcomes = run_stages(chosen, tmp_path, budget_s=80, reserve_s=10, min_stage_s=20, clock=clock)
    assert outcomes[0]["status"] == "ok" and outcomes[1]["status"] == "skipped: no time left"


def test_pack_holds_results_and_logs(tmp_path):
    logs = tmp_path / "gpu-out"
    logs.mkdir()
    (logs / "pytest.log").write_text("1 passed")
    (logs / "run").mkdir()  # checkpoints: left out
    archive = pack(tmp_path, logs)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "gpu-out/pytest.log" in names and not any(name.startswith("gpu-out/run") for name in names)
    assert any(name.startswith("results") for name in names) == (ROOT / "results").exists()


def test_unknown_stage_is_refused(tmp_path, capsys):
    assert main(["--stages", "tests", "benchmarks", "--logs", str(tmp_path)]) == 2
    assert "unknown stages ['benchmarks']" in capsys.readouterr().err


@pytest.mark.emulated
def test_sanitize_workload_runs_every_kernel_variant_on_the_emulator(capsys):
    from harness.sanitize import main as sanitize, sanitized_checks

    checks = sanitized_checks(["residual"], first_config=True)
    assert checks and all(v.source is not None and len(configs) == 1 for v, _, _, configs in checks)
    assert sanitize(["--device", "cpu", "--layers", "residual", "--first-config"]) == 0
    assert "every check passed" in capsys.readouterr().out
    assert sanitize(["--layers", "nope"]) == 2


def test_every_stage_command_is_a_valid_command_line(tmp_path):
    """A misspelt flag in a stage would surface only on the GPU machine, as a failed stage."""
    import trainer.prepro
    import trainer.train
    from harness.cli import build_parser as bench_parser
    from harness.gpu_suite import stages
    from harness.sanitize import build_parser as sanitize_parser

    parsers = {"bench.py": bench_parser(), "trainer/train.py": trainer.train.build_parser(),
               "trainer/prepro.py": trainer.prepro.build_parser(), "harness.sanitize": sanitize_parser()}
    checked = set()
    for stage in stages(tmp_path, tmp_path / "data").values():
        for _, argv in stage.commands:
            program = next((arg for arg in argv if arg in parsers), None)
            if program is None:
                assert argv[1:3] == ["-m", "pytest"], argv
                continue
            parsers[program].parse_args(argv[argv.index(program) + 1:])  # argparse exits 2 on a bad flag
            checked.add(program)
    assert checked == set(parsers)


def test_the_bench_stage_measures_the_layers_asked_for_in_that_order(tmp_path):
    from harness.gpu_suite import main, stages

    bench = stages(tmp_path, tmp_path / "data", ["layernorm", "gelu"])["bench"]
    assert [name for name, _ in bench.commands] == ["bench-layernorm", "bench-gelu"]
    default = [name for name, _ in stages(tmp_path, tmp_path / "data")["bench"].commands]
    assert default[0] == "bench-matmul" and default[-1] == "bench-layernorm"
    assert main(["--layers", "layernorm", "nolayer", "--logs", str(tmp_path / "logs")]) == 2
