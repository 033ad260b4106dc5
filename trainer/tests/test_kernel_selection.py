"""best.yaml: validation with clear messages, and bench.py --select writing it."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.errors import UserError
from harness.runner import Row, Run
from trainer.kernels import (fastest_rows, fastest_trainer_selection, load_selection, ops_by_id, parse_selection,
                             simplest_selection, simplest_trainer_selection, trainer_section)

ROOT = Path(__file__).resolve().parents[2]
ONLY_LN = ("layernorm.forward",)


def test_valid_section_resolves_variants_and_default_config():
    choices = parse_selection({"fp32": {"layernorm.forward": {"variant": 3}}}, "fp32", "best.yaml", ONLY_LN)
    choice = choices["layernorm.forward"]
    assert choice.variant.number == 3 and choice.config == choice.variant.configs[0]


@pytest.mark.parametrize("data,message", [
    ({"fp32": {"layernorm.fwd": {"variant": 1}}}, "unknown layer passes \\['layernorm.fwd'\\]"),
    ({"fp32": {"layernorm.forward": {"variant": 1, "blocks": 3}}}, "unknown keys \\['blocks'\\]"),
    ({"fp32": {"layernorm.forward": {"variant": 99}}}, "no variant 99; valid variants: 1, 2"),
    ({"fp32": {"layernorm.forward": {"variant": 1, "config": {"block_size": 7}}}}, "is not one variant 1 sweeps"),
    ({"fp32": {"layernorm.forward": "fast"}}, "expected \\{variant: N"),
    ({"fp16": {}}, "unknown sections \\['fp16'\\]"),
    ({"bf16": {}}, "no 'fp32' section"),
    ({"fp32": {}}, "no entry for layernorm.forward"),
    (["a list"], "expected a mapping"),
])
def test_bad_selections_name_the_problem(data, message):
    with pytest.raises(UserError, match=message):
        parse_selection(data, "fp32", "best.yaml", ONLY_LN)


def test_fp32_only_variant_rejected_for_bf16():
    with pytest.raises(UserError, match="supports fp32, not bf16"):
        parse_selection({"bf16": {"layernorm.backward": {"variant": 1}}}, "bf16", "best.yaml", ())


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="bench.py --select"):
        load_selection(tmp_path / "best.yaml", "fp32", ONLY_LN)
    bad = tmp_path / "bad.yaml"
    bad.write_text("fp32: {layernorm.forward: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_selection(bad, "fp32", ONLY_LN)


def row(variant, time_us, status="ok", config=None):
    return Row(kind="variant", label=f"{variant}: x", variant=variant, config=config or {"block_size": 128},
               status=status, timing=None if time_us is None else {"median_us": time_us})


def run(rows, shape=None, dtype="fp32"):
    return Run(op="layernorm.forward", dtype=dtype, shape=shape or {"B": 8, "T": 1024, "C": 768}, bytes=1, flops=1,
               bound="memory", ceilings={}, environment={}, rows=rows)


def test_fastest_checked_variant_at_the_bench_shape_wins():
    runs = [
        run([row(2, 30.0), row(5, 12.0, status="failed"), row(4, 20.0, config={"block_size": 64})]),
        run([row(3, 1.0)], shape={"B": 3, "T": 37, "C": 1000}),  # another shape: ignored
        run([row(6, 5.0)], dtype="bf16"),
    ]
    assert fastest_rows(runs, "fp32") == {"layernorm.forward": ({"variant": 4, "config": {"block_size": 64}}, 20.0)}
    assert fastest_rows(runs, "bf16") == {"layernorm.forward": ({"variant": 6, "config": {"block_size": 128}}, 5.0)}


def test_simplest_selection_is_valid_for_both_dtypes():
    for dtype in ("fp32", "bf16"):
        section = simplest_selection(dtype)
        choices = parse_selection({dtype: section}, dtype, "simplest", required=())
        assert all(dtype in c.variant.dtypes for c in choices.values())


def test_bench_select_simplest_writes_a_loadable_file(tmp_path):
    target = tmp_path / "best.yaml"
    result = subprocess.run([sys.executable, "bench.py", "--select", str(target), "--simplest"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    data = yaml.safe_load(target.read_text())
    assert data["fp32"]["layernorm.forward"] == {"variant": 1, "config": {"block_size": 32}}
    assert load_selection(target, "bf16", ONLY_LN)["layernorm.forward"].variant.number == 1
    for dtype in ("fp32", "bf16"):  # complete for the trainer: every op, one attention family
        assert load_selection(target, dtype)["attention.forward"].variant.number == 1


def test_bench_select_without_results_says_what_to_do(tmp_path):
    result = subprocess.run([sys.executable, "bench.py", "--select", str(tmp_path / "b.yaml"), "--results",
                             str(tmp_path / "none.json")], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "make gpu" in result.stderr
    assert not (tmp_path / "b.yaml").exists()


def attention_run(op, variant, time_us, dtype="bf16"):
    shape = {"B": 8, "T": 1024, "NH": 12, "HS": 64}
    config = ops_by_id()[op].variant_by_number(variant).configs[0]
    measured = Row(kind="variant", label=f"{variant}: x", variant=variant, config=dict(config), status="ok",
                   timing={"median_us": time_us})
    return Run(op=op, dtype=dtype, shape=shape, bytes=1, flops=1, bound="compute", ceilings={}, environment={},
               rows=[measured])


@pytest.mark.parametrize("flash_times,family", [((300.0, 700.0), "flash_attention"),  # 1000 < 1100
                                                 ((500.0, 700.0), "attention"),  # 1200 > 1100
                                                 ((300.0, None), "attention")])  # flash backward unmeasured
def test_select_keeps_the_attention_family_fastest_over_both_passes(flash_times, family):
    runs = [attention_run("attention.forward", 2, 400.0), attention_run("attention.backward", 2, 700.0)]
    runs += [attention_run(f"flash_attention.{p}", 2, t) for p, t in zip(("forward", "backward"), flash_times)
             if t is not None]
    section, fallbacks, reason = fastest_trainer_selection(runs, "bf16")
    assert {op_id.partition(".")[0] for op_id in section if "attention" in op_id} == {family}
    assert section[f"{family}.forward"]["variant"] == 2 and section[f"{family}.backward"]["variant"] == 2
    assert "attention 1100.0 us" in reason and "layernorm.forward" in fallbacks  # unmeasured: simplest
    choices = parse_selection({"bf16": section}, "bf16", "best.yaml")  # what the trainer loads
    assert f"{family}.backward" in choices


def test_select_without_attention_measurements_takes_the_three_step_family():
    section, fallbacks, _ = fastest_trainer_selection([], "bf16")
    assert "attention.forward" in section and not any(op.startswith("flash") for op in section)
    assert set(fallbacks) == set(section)
    parse_selection({"bf16": section}, "bf16", "best.yaml")


@pytest.mark.parametrize("change,message", [
    (lambda s: s.update({"flash_attention.forward": {"variant": 1}}), "both attention.\\* and flash_attention.\\*"),
    (lambda s: [s.pop("attention.forward"), s.pop("attention.backward")], "no attention entries"),
    (lambda s: s.pop("attention.backward"), "no entry for attention.backward"),
])
def test_trainer_sections_name_exactly_one_whole_attention_family(change, message):
    section = simplest_trainer_selection("fp32")
    change(section)
    with pytest.raises(UserError, match=message):
        parse_selection({"fp32": section}, "fp32", "best.yaml")


def test_flash_family_alone_is_a_complete_trainer_section():
    section = trainer_section(simplest_selection("bf16"), "flash_attention")
    choices = parse_selection({"bf16": section}, "bf16", "best.yaml")
    assert "flash_attention.forward" in choices and "attention.forward" not in choices


def test_bench_select_from_a_results_file_writes_and_shows_the_choice(tmp_path, capsys):
    """`bench.py --select` from measured runs: the fastest checked variant per op and dtype, the
    faster attention family, the simplest variant where nothing was measured; the file is printed."""
    from harness.cli import main
    from harness.report import write_json

    runs = [attention_run("flash_attention.forward", 2, 300.0), attention_run("flash_attention.backward", 2, 700.0),
            attention_run("attention.forward", 2, 400.0), attention_run("attention.backward", 2, 900.0),
            attention_run("attention.forward", 1, 350.0, dtype="fp32")]
    write_json(runs, tmp_path / "gpu.json")
    target = tmp_path / "best.yaml"
    assert main(["--select", str(target), "--results", str(tmp_path / "gpu.json")]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("# fastest checked variants from") and target.read_text() in printed
    assert "unmeasured: simplest" in printed
    assert load_selection(target, "bf16")["flash_attention.backward"].variant.number == 2
    assert load_selection(target, "fp32")["attention.forward"].variant.number == 1  # fp32: only the three steps measured


def encoder_backward_run(rows):
    return Run(op="encoder.backward", dtype="fp32", shape={"B": 8, "T": 1024, "C": 768, "V": 50257}, bytes=1,
               flops=1, bound="memory", ceilings={}, environment={}, rows=rows)


def test_deterministic_selection_passes_over_a_faster_variant_with_atomics():
    runs = [encoder_backward_run([row(2, 10.0, config={"block_size": 256}), row(3, 20.0, config={"block_size": 256})])]
    assert fastest_rows(runs, "fp32")["encoder.backward"][0]["variant"] == 2  # atomics, not deterministic
    assert fastest_rows(runs, "fp32", deterministic=True)["encoder.backward"][0]["variant"] == 3
    section, fallbacks, _ = fastest_trainer_selection(runs, "fp32", deterministic=True)
    assert "global_norm.forward" in fallbacks and section["global_norm.forward"]["variant"] == 2  # not 1 (atomics)
    choices = parse_selection({"fp32": section}, "fp32", "best.yaml")
    assert all(choice.variant.deterministic for choice in choices.values())


def test_bench_select_simplest_deterministic_writes_only_deterministic_variants(tmp_path):
    target = tmp_path / "best.yaml"
    result = subprocess.run([sys.executable, "bench.py", "--select", str(target), "--simplest", "--deterministic"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "--deterministic" in target.read_text().splitlines()[0]  # the file says how it was made
    for dtype in ("fp32", "bf16"):
        choices = load_selection(target, dtype)
        assert all(choice.variant.deterministic for choice in choices.values())
        assert choices["encoder.backward"].variant.number == 3


def test_deterministic_without_select_is_refused():
    result = subprocess.run([sys.executable, "bench.py", "layernorm", "--deterministic"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2 and "--deterministic only applies to --select" in result.stderr


def test_the_training_log_names_kernels_that_are_not_deterministic():
    choices = parse_selection({"fp32": {"encoder.backward": {"variant": 2}, "layernorm.forward": {"variant": 1}}},
                              "fp32", "best.yaml", ("encoder.backward", "layernorm.forward"))
    assert "not deterministic" in choices["encoder.backward"].describe()
    assert "not deterministic" not in choices["layernorm.forward"].describe()
