"""results/train-<gpu>.md from a training log: ours beside the quoted figures, losses, kernels, profile."""
from trainer import results, train

from .conftest import tiny_args


def test_a_run_log_becomes_a_results_table(shards, tmp_path):
    cfg, loaded = train.parse_args(tiny_args(shards, tmp_path / "run", "--max-steps", "3", "--profile",
                                             "--val-every", "3", "--val-steps", "1"))
    train.run(cfg, loaded, quiet=True)
    log_copy, markdown = results.save(tmp_path / "run" / "train.log", "Test GPU 1", results_dir=tmp_path)
    assert log_copy.name == "train-test-gpu-1.log" and markdown.name == "train-test-gpu-1.md"
    assert log_copy.read_text() == (tmp_path / "run" / "train.log").read_text()
    text = markdown.read_text()
    assert text.startswith("# GPT-2 training on Test GPU 1")
    [ours] = [line for line in text.splitlines() if line.startswith("| this workbench")]
    cells = [cell.strip() for cell in ours.strip("|").split("|")]
    assert cells[2].replace(".", "").isdigit() and cells[1].replace(",", "").isdigit()  # ms/step, tokens/s
    assert cells[3] == "n/a" and cells[4].startswith("peak process memory")  # no MFU on a CPU
    assert "measured here, steps 2-3 (the first left out: warm-up)" in cells[5]
    assert text.count("quoted in issue 4 for orientation, not measured here") == len(results.ORIENTATION)
    assert "Training loss:" in text and "at step 3" in text and "Validation loss:" in text
    assert "## Profile" in text and "## Kernels" not in text  # the torch engine runs no kernel variants


def test_a_log_without_a_summary_says_so_and_the_cli_needs_a_log(tmp_path, capsys):
    text = results.render("engine: kernels best.yaml cuda bf16\nerror: out of memory\n", "Test GPU")
    assert "the run logged no summary" in text and "`engine: kernels best.yaml cuda bf16`" in text
    assert results.main([str(tmp_path / "missing.log"), "--gpu", "x"]) == 2
    assert "no training log" in capsys.readouterr().err
