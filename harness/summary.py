"""The short summary `make gpu` prints last: test outcome, and per run the best variant against the
baselines and the ceiling. `python -m harness.summary OUT_DIR`."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from harness.runner import Run


# The failing tests the summary names (pytest's short summary lines), so a run whose output is read
# from its tail says which ones failed, not only how many.
MAX_FAILURES_SHOWN = 12


def best_variant(run: Run):
    timed = [row for row in run.rows if row.kind == "variant" and row.median_us is not None]
    return min(timed, key=lambda row: row.median_us) if timed else None


def describe(run: Run) -> str:
    best = best_variant(run)
    failed = [row for row in run.rows if row.status == "failed"]
    if best is None:
        text = f"{run.key}: no variant timed"
    else:
        speedups = ", ".join(f"{value:.2f}x vs {name}" for name, value in best.speedup.items())
        config = " ".join(f"{k}={v}" for k, v in best.config.items())
        text = (f"{run.key}: best {best.label} [{config}] {best.median_us:.2f} us, {best.gbps:.0f} GB/s, "
                f"{best.pct_of_ceiling:.1f}% of ceiling; {speedups}")
    if failed:
        text += f"; {len(failed)} FAILED rows"
    return text


def main(out_dir: str) -> int:
    out = Path(out_dir)
    lines = ["", "==== GPU suite summary ===="]
    log = out / "pytest.log"
    if log.exists():
        text = [line for line in log.read_text().splitlines() if line.strip()]
        lines.append("pytest: " + (text[-1] if text else "(empty log)"))
        failed = [line for line in text if line.startswith(("FAILED ", "ERROR "))]
        lines += [f"  {line[:200]}" for line in failed[:MAX_FAILURES_SHOWN]]
        if len(failed) > MAX_FAILURES_SHOWN:
            lines.append(f"  ... and {len(failed) - MAX_FAILURES_SHOWN} more in {log}")
    for path in sorted(out.glob("bench-*.json")):
        for item in json.loads(path.read_text())["runs"]:
            lines.append(describe(Run.from_dict(item)))
    train = out / "train.log"
    if train.exists():  # the GPT-2 run: its last step's line (the loss) and its summary (speed, memory)
        text = train.read_text().splitlines()
        steps = [line for line in text if re.search(r"\bstep +\d+/\d+ \|", line)]
        lines.append("train: " + (steps[-1].strip() if steps else "no step logged"))
        lines += [f"train {line.strip()}" for line in text if line.startswith("summary:")][-1:]
    for log in sorted(out.glob("sanitize-*.log")):  # the checks' verdict and compute-sanitizer's own
        verdicts = [line.strip("= ").strip() for line in log.read_text().splitlines()
                    if "SUMMARY" in line or line.startswith(("every check passed", "[gpu_suite]"))
                    or line.endswith("failed checks")]
        lines.append(f"{log.stem}: " + ("; ".join(verdicts) if verdicts else "no verdict (stopped early?)"))
    notebooks = out / "notebooks.log"
    if notebooks.exists():
        tail = [line for line in notebooks.read_text().splitlines() if line.strip()]
        lines.append("notebooks: " + (tail[-1] if tail else "(empty log)"))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "gpu-out"))
