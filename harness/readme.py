"""Keep the README's table of variants generated from the .cu headers: `make docs` rewrites it, and a
test fails when it has drifted."""
from __future__ import annotations

import re
from pathlib import Path

from harness.cli import list_variants

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- variants:start (make docs) -->", "<!-- variants:end -->"


def render(text: str) -> str:
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"README.md lacks the {START} ... {END} markers")
    return pattern.sub(lambda _: f"{START}\n{list_variants(markdown=True)}\n{END}", text)


def main() -> None:
    text = README.read_text()
    updated = render(text)
    if updated != text:
        README.write_text(updated)
        print("README.md: variant table regenerated")
    else:
        print("README.md: variant table already up to date")


if __name__ == "__main__":
    main()
