"""bench.py --ncu (harness/nsight.py): what it asks ncu to profile, and the checked call it profiles."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness import nsight
from harness.emulator import build
from harness.registry import all_variants, find_ops

ROOT = Path(__file__).resolve().parents[2]
KERNEL_VARIANTS = [v for v in all_variants() if v.source is not None]


@pytest.mark.emulated  # the emulator's compiler lists the kernels
@pytest.mark.parametrize("variant", KERNEL_VARIANTS, ids=[v.id for v in KERNEL_VARIANTS])
def test_the_filter_names_every_kernel_of_the_variant(variant):
    """ncu's filter comes from ptxas's report (NVRTC); the emulator finds the kernels in the
    preprocessed source, headers and macros expanded. Both must see the same kernels."""
    for dtype in variant.dtypes:
        _, emulated = build(variant.source, dtype)
        assert nsight.kernel_names(variant, dtype, "sm_90") == sorted(emulated)


def test_the_command_profiles_the_variants_kernels_and_nothing_else():
    child = nsight.child_command("layernorm.forward", 5, "fp32", (8, 1024, 768), {"block_size": 128})
    command = nsight.ncu_command("/opt/ncu", ["layernorm_forward_vectorized", "other_kernel"], child)
    assert command[:3] == ["/opt/ncu", "--kernel-name", "regex:^(layernorm_forward_vectorized|other_kernel)$"]
    assert command[-len(child):] == child
    assert child[1:] == ["-m", "harness.nsight", "layernorm.forward", "5", "fp32", "8,1024,768", '{"block_size": 128}']
    pattern = re.compile(command[2].removeprefix("regex:"))
    assert pattern.match("other_kernel") and not pattern.match("layernorm_forward_vectorized_2")
    sections = [command[i + 1] for i, arg in enumerate(command) if arg == "--section"]
    assert sections == nsight.SECTIONS
    full = nsight.ncu_command("/opt/ncu", ["k"], child, ncu_set="full")
    assert "--section" not in full and full[3:5] == ["--set", "full"]


def test_profile_runs_one_command_per_variant_and_config_skips_libraries_and_refusals(monkeypatch, capsys):
    monkeypatch.setenv("NCU", sys.executable)  # any file that exists stands in for ncu
    commands = []

    def run(argv):
        commands.append(argv)
        if argv[-4] == "1":  # ncu ran variant 1's child, but its filter matched no launch
            return 0, "==WARNING== No kernels were profiled.\n"
        return (1 if argv[-4] == "4" else 0), ""  # variant 4's child "fails"

    [op] = find_ops("matmul", "forward")
    dims = op.make_dims((2, 5, 40, 48))  # every size a multiple of 8 but M: the tensor-core variants run
    failures = nsight.profile([op], variants_of=lambda o: o.variants, dtypes=("bf16",), dims_of=lambda o: dims,
                              configs_of=lambda v: v.configs[:1], arch="sm_90", run=run)
    out = capsys.readouterr().out
    profiled = sorted(int(argv[-4]) for argv in commands)
    assert profiled == sorted(v.number for v in op.variants if v.source is not None and "bf16" in v.dtypes
                              and not v.refusal(dims, "bf16", v.configs[0]))
    assert "skipped matmul.forward/3 bf16" in out  # cuBLAS through torch
    assert failures == 2 and "FAILED  matmul.forward/4 bf16" in out
    assert re.search(r"FAILED  matmul.forward/1 bf16 \(B=2,T=5,C=40,OC=48\) {.*}: ncu profiled none", out)
    for argv in commands:
        assert argv[0] == sys.executable and argv[1] == "--kernel-name"
        assert argv[-5:-1] == ["matmul.forward", argv[-4], "bf16", "2,5,40,48"]

    commands.clear()
    odd = op.make_dims((2, 5, 33, 47))  # C and OC not multiples of 8: the tensor-core variants refuse
    nsight.profile([op], variants_of=lambda o: o.variants, dtypes=("bf16",), dims_of=lambda o: odd,
                   configs_of=lambda v: v.configs[:1], arch="sm_90", run=run)
    out = capsys.readouterr().out
    assert "refused matmul.forward/4 bf16" in out and all(argv[-4] != "4" for argv in commands)

    with pytest.raises(nsight.UserError, match="nothing to profile"):  # only the cuBLAS variant selected
        nsight.profile([op], variants_of=lambda o: [v for v in o.variants if v.source is None], dtypes=("bf16",),
                       dims_of=lambda o: dims, configs_of=lambda v: v.configs[:1], arch="sm_90", run=run)


def test_without_ncu_the_message_says_where_to_get_it(monkeypatch):
    monkeypatch.setenv("NCU", "/nonexistent/ncu")
    monkeypatch.setattr(nsight.shutil, "which", lambda name: None)
    monkeypatch.setattr(nsight, "TOOLKIT_NCU", "/nonexistent/cuda/bin/ncu")
    with pytest.raises(nsight.UserError, match="ncu.*was not found.*NCU="):
        nsight.find_ncu()


@pytest.mark.emulated
def test_the_profiled_child_checks_one_call_on_the_emulator():
    ok = subprocess.run([sys.executable, "-m", "harness.nsight", "layernorm.forward", "5", "fp32", "1,3,64",
                         '{"block_size": 128}', "--device", "cpu"], cwd=ROOT, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("ok      layernorm.forward/5 fp32 (B=1,T=3,C=64) [block_size=128]")
    bad = subprocess.run([sys.executable, "-m", "harness.nsight", "layernorm.sideways", "5", "fp32", "1,3,64", "{}",
                          "--device", "cpu"], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 2 and "no pass 'sideways'" in bad.stderr


def test_bench_ncu_profiles_the_default_config_at_the_bench_shape_or_the_chosen_block_sizes(monkeypatch, capsys):
    """bench.py's flags reach the profiler: --variant, --dtype, --block-size, --shape."""
    from harness import cli, gpu

    monkeypatch.setenv("NCU", sys.executable)
    monkeypatch.setattr(gpu, "require_gpu", lambda: None)  # stand-ins for the GPU's services
    monkeypatch.setattr(gpu, "device_arch", lambda: "sm_90")
    commands = []
    monkeypatch.setattr(nsight, "run_and_echo", lambda argv: (commands.append(argv), (0, ""))[1])

    assert cli.main(["layernorm.forward", "--variant", "5", "--dtype", "bf16", "--ncu"]) == 0
    [command] = commands
    assert command[-5:] == ["layernorm.forward", "5", "bf16", "8,1024,768", '{"block_size": 128}']
    assert "regex:^(layernorm_forward_vectorized)$" in command

    commands.clear()
    assert cli.main(["layernorm.forward", "--variant", "5", "--dtype", "fp32", "--ncu", "--block-size", "256", "512",
                     "--shape", "4,64,1600", "--ncu-set", "full"]) == 0
    assert [c[-2:] for c in commands] == [["4,64,1600", '{"block_size": 256}'], ["4,64,1600", '{"block_size": 512}']]
    assert all(c[3:5] == ["--set", "full"] for c in commands)
    assert "== ncu: layernorm.forward/5 fp32 (B=4,T=64,C=1600) {'block_size': 256}" in capsys.readouterr().out


def test_run_and_echo_returns_the_exit_code_and_the_output(capsys):
    code, output = nsight.run_and_echo([sys.executable, "-c", "print('==WARNING== No kernels were profiled.'); exit(3)"])
    assert code == 3 and nsight.NOTHING_PROFILED in output and nsight.NOTHING_PROFILED in capsys.readouterr().out
