"""The GPT-2 training run as a result: results/train-<gpu>.log (the log as written) and
results/train-<gpu>.md (its speed, memory and losses beside the figures issue 4 quotes for
orientation, the kernels it ran and the per-op profile). `make gpu-train` and the GPU suite call it:

    python -m trainer.results gpu-out/train.log            # on the GPU that ran it (names the files)
    python -m trainer.results gpu-out/train.log --gpu "NVIDIA H100 80GB HBM3"
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from harness.report import RESULTS_DIR

# GPT-2 124M, B=32, T=1024, bf16 on an H100: the figures issue 4 gives for orientation. They were
# measured by the author, not by this project; they are shown beside ours, never as ours.
ORIENTATION = [
    ("llm.c, cuDNN attention", "523,000", "62"),
    ("PyTorch 2.11, torch.compile", "474,000", ""),
    ("llm.c, its own attention", "337,000", ""),
    ("PyTorch eager", "323,000", ""),
]

SUMMARY = re.compile(r"^summary: (?P<steps>[^|]+)\| (?P<ms>[\d.]+) ms/step \| (?P<tok>[\d,]+) tok/s \| "
                     r"MFU (?P<mfu>\S+) \| (?P<memory>.+)$")
STEP = re.compile(r"^step +(?P<step>\d+)/\d+ \| loss (?P<loss>[\d.]+)")
VAL = re.compile(r"^step (?P<step>\d+): val loss (?P<loss>[\d.]+)")


def section(lines: list[str], start: str) -> list[str]:
    """The indented lines after the first line that starts with `start`, that line included."""
    for i, line in enumerate(lines):
        if line.startswith(start):
            block = [line]
            for following in lines[i + 1:]:
                if not following.startswith("  "):
                    break
                block.append(following)
            return block
    return []


def render(log_text: str, gpu: str) -> str:
    lines = log_text.splitlines()
    summaries = [m for m in map(SUMMARY.match, lines) if m]
    steps = [m for m in map(STEP.match, lines) if m]
    vals = [m for m in map(VAL.match, lines) if m]
    engine = next((line for line in lines if line.startswith("engine: ")), "engine: (not logged)")
    out = [f"# GPT-2 training on {gpu}", "",
           "Written by `python -m trainer.results` from the log beside this file (`make gpu-train`, or the "
           "GPU suite's train stage); do not edit by hand.", "", f"`{engine}`", ""]
    out += ["| run | tokens/s | ms/step | MFU | peak memory | source |", "|---|---:|---:|---:|---|---|"]
    if summaries:
        s = summaries[-1]
        out.append(f"| this workbench's kernels (best.yaml) | {s['tok']} | {s['ms']} | {s['mfu']} | {s['memory']} | "
                   f"measured here, {s['steps'].strip()} |")
    else:
        out.append("| this workbench's kernels (best.yaml) | - | - | - | - | the run logged no summary: see the log |")
    for name, tokens, ms in ORIENTATION:
        out.append(f"| {name} | {tokens} | {ms or '-'} | - | - | quoted in issue 4 for orientation, not measured here |")
    out.append("")
    if steps:
        first, last = steps[0], steps[-1]
        out.append(f"Training loss: {float(first['loss']):.4f} at step {first['step']}, "
                   f"{float(last['loss']):.4f} at step {last['step']} (llm.c's from-scratch runs reach about 5.8 "
                   "by step 40).")
    if vals:
        out.append("Validation loss: " + ", ".join(f"{float(m['loss']):.4f} at step {m['step']}" for m in vals) + ".")
    kernels = [line for line in lines if line.startswith("  kernel ")]
    for title, block in (("Kernels", kernels), ("Profile", section(lines, "profile:"))):
        if block:
            out += ["", f"## {title}", "", "```", *[line.rstrip() for line in block], "```"]
    return "\n".join(out) + "\n"


def save(log_path: Path, gpu: str, results_dir: Path = RESULTS_DIR) -> tuple[Path, Path]:
    from harness.atomic import atomic_write
    from harness.ceilings import gpu_slug

    text = Path(log_path).read_text()
    slug = gpu_slug(gpu)
    log_copy, markdown = results_dir / f"train-{slug}.log", results_dir / f"train-{slug}.md"
    for path, content in ((log_copy, text), (markdown, render(text, gpu))):
        with atomic_write(path, "w") as handle:
            handle.write(content)
    return log_copy, markdown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Keep a GPT-2 training log in results/ with its markdown.")
    parser.add_argument("log", type=Path, help="the train.log of the run")
    parser.add_argument("--gpu", help="the GPU's name (default: this machine's GPU)")
    args = parser.parse_args(argv)
    if not args.log.is_file():
        print(f"error: no training log at {args.log}; run `make gpu-train` first", file=sys.stderr)
        return 2
    gpu = args.gpu
    if gpu is None:
        from harness.ceilings import gpu_name
        from harness.gpu import gpu_unavailable_reason

        reason = gpu_unavailable_reason()
        if reason:
            print(f"error: give --gpu NAME: {reason}", file=sys.stderr)
            return 2
        gpu = gpu_name()
    for path in save(args.log, gpu):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
