"""The summary `make gpu` prints last, from the logs it wrote."""
from harness.summary import main


def test_summary_reports_tests_training_and_notebooks(tmp_path, capsys):
    (tmp_path / "pytest.log").write_text("....\n\n1012 passed, 14 skipped in 301.2s\n")
    (tmp_path / "train.log").write_text(
        "step 20: val loss 6.1\n"
        "step 39/40 | loss 5.900000 | norm 1.2 | lr 6.00e-04 | 120.0 ms | 273,066 tok/s | MFU 31.0%\n"
        "step 40/40 | loss 5.800000 | norm 1.1 | lr 6.00e-04 | 119.0 ms | 275,361 tok/s | MFU 31.2%\n"
        "step 40: val loss 5.9\n"
        "summary: steps 2-40 (the first left out: warm-up) | 119.5 ms/step | 274,200 tok/s | MFU 31.1% | "
        "peak GPU memory 30.10 GiB allocated (31.00 GiB reserved)\n")
    (tmp_path / "notebooks.log").write_text("4 passed in 80s\n")
    assert main(str(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "pytest: 1012 passed, 14 skipped" in printed
    assert "train: step 40/40 | loss 5.800000" in printed and "275,361 tok/s" in printed
    assert "train summary: steps 2-40" in printed and "peak GPU memory 30.10 GiB" in printed
    assert "notebooks: 4 passed" in printed


def test_summary_says_when_the_training_logged_no_step(tmp_path, capsys):
    (tmp_path / "train.log").write_text("error: no kernels file at best.yaml\n")
    main(str(tmp_path))
    assert "train: no step logged" in capsys.readouterr().out


def test_summary_gives_the_sanitizer_verdicts(tmp_path, capsys):
    (tmp_path / "sanitize-memcheck.log").write_text(
        "ok      residual.forward/2 fp32 (N=1000) [block_size=256]\nevery check passed\n"
        "========= ERROR SUMMARY: 0 errors\n")
    (tmp_path / "sanitize-racecheck.log").write_text(
        "ok      layernorm.forward/2 fp32 (B=3,T=37,C=1000) [block_size=256]\n"
        "[gpu_suite] stopped after 120 s: the stage's share of the budget\n")
    main(str(tmp_path))
    printed = capsys.readouterr().out
    assert "sanitize-memcheck: every check passed; ERROR SUMMARY: 0 errors" in printed
    assert "sanitize-racecheck: [gpu_suite] stopped after 120 s" in printed


def test_summary_names_the_failing_tests(tmp_path, capsys):
    from harness.summary import MAX_FAILURES_SHOWN

    failures = [f"FAILED kernels/test_warp_mma.py::test_case[gpu-{i}] - AssertionError: x" for i in range(15)]
    (tmp_path / "pytest.log").write_text("...F\n" + "\n".join(failures) + "\n15 failed, 3 passed in 9.1s\n")
    main(str(tmp_path))
    out = capsys.readouterr().out
    assert "pytest: 15 failed, 3 passed in 9.1s" in out
    shown = [line for line in out.splitlines() if line.startswith("  FAILED ")]
    assert shown == [f"  {line}" for line in failures[:MAX_FAILURES_SHOWN]]
    assert f"... and {15 - MAX_FAILURES_SHOWN} more" in out
