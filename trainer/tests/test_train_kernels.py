"""trainer/train.py driving the kernel engine, on the CPU emulator: the loop, validation, --profile,
checkpoints, --resume and samples as `python trainer/train.py --kernels best.yaml` runs them on a
GPU, with a one-layer model so the emulator (one OS thread per CUDA thread) keeps up. train.py
itself refuses --kernels without a GPU (far too slow for real models), so these tests build the
kernel engine in its place; everything else is the real run."""
import math
from dataclasses import replace

import pytest

from trainer import train
from trainer.checkpoint import list_checkpoints
from trainer.config import GPTConfig
from trainer.kernel_engine import KernelEngine
from trainer.kernels import write_selection
from trainer.weights import read_llmc

from .conftest import tiny_args
from .test_kernel_parity import highest_selection

ONE_LAYER = GPTConfig(num_layers=1, num_heads=2, channels=32)  # GPT-2's vocabulary: 1.6M parameters


@pytest.fixture
def kernel_run(shards, tmp_path, monkeypatch):
    """run(out_dir, family, *flags): train.py's run with the family's most advanced fp32 kernels."""
    monkeypatch.setitem(train.MODELS, "one-layer", ONE_LAYER)
    monkeypatch.setattr(train, "make_engine", lambda model, flat, cfg: KernelEngine(model, flat, cfg))

    def run(out_dir, family, *flags):
        kernels = tmp_path / f"{family}.yaml"
        write_selection(kernels, {"fp32": highest_selection("fp32", family)}, "test")
        if "--resume" in flags:
            return train.run(*train.parse_args(list(flags)), quiet=True)
        argv = tiny_args(shards, out_dir, "--kernels", str(kernels), "--batch-size", "2", "--seq-len", "8",
                         "--dtype", "fp32", *flags)
        cfg, loaded = train.parse_args(argv)
        return train.run(replace(cfg, model="one-layer"), loaded, quiet=True)  # not a --model choice

    return run


def steps_and_values(history, key="loss"):
    """([steps], [values]) of the history's entries that have `key`."""
    entries = [(h["step"], h[key]) for h in history if key in h]
    return [step for step, _ in entries], [value for _, value in entries]


@pytest.mark.emulated
@pytest.mark.parametrize("family", ["attention", "flash_attention"])
def test_kernel_training_profiles_validates_and_resumes_where_it_stopped(kernel_run, tmp_path, family):
    flags = ("--max-steps", "3", "--val-every", "2", "--val-steps", "1")
    straight = kernel_run(tmp_path / "straight", family, *flags, "--profile")
    first = kernel_run(tmp_path / "stopped", family, *flags, "--stop-at", "2")
    resumed = kernel_run(None, family, "--resume", str(tmp_path / "stopped"))

    steps, train_losses = steps_and_values(straight)
    assert steps == [1, 2, 3]
    assert all(abs(loss - math.log(50257)) < 0.5 for loss in train_losses)  # near-uniform at GPT-2's init
    # The profile ran a forward and backward before step 1 and put the gradients and data back:
    # the run without it, stopped and resumed, sees the same losses (to atomics' rounding order).
    for key in ("loss", "val_loss"):
        steps, values = steps_and_values(straight, key)
        joined_steps, joined_values = steps_and_values(first + resumed, key)
        assert joined_steps == steps and joined_values == pytest.approx(values, rel=1e-5)
    assert steps_and_values(straight, "val_loss")[0] == [0, 2, 3]

    log = (tmp_path / "straight" / "train.log").read_text()
    assert "engine: kernels" in log and "profile: one forward + backward" in log
    assert f"  kernel {family}.forward" in log and "  kernel matmul.backward" in log  # what ran, in the log
    profiled = log.split("profile:")[1].split("step 0")[0]
    for op in ("encoder.forward", "matmul.forward", "layernorm.backward", f"{family}.forward",
               f"{family}.backward", "classifier.backward"):
        assert op in profiled
    assert [c.step for c in list_checkpoints(tmp_path / "stopped")] == [2, 3]
    _, straight_params = read_llmc(tmp_path / "straight" / "model_00000003.bin")
    _, resumed_params = read_llmc(tmp_path / "stopped" / "model_00000003.bin")
    assert (straight_params - resumed_params).abs().max() < 1e-6


@pytest.mark.emulated
def test_kernel_engine_samples_text(kernel_run, shared_vocab, tmp_path):
    kernel_run(tmp_path / "run", "flash_attention", "--max-steps", "1", "--sample-every", "1",
               "--sample-tokens", "3", "--vocab", str(shared_vocab))
    log = (tmp_path / "run" / "train.log").read_text()
    assert log.count("sample:\n---\n") == 2  # before step 1 and at the end
