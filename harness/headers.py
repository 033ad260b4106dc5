"""Parse the header comment every variant file starts with.

    /*
     * layernorm forward, variant 3: one warp per row
     *
     * Changed: what is different from the previous variant.
     * Teaches: what to learn from it.
     * Run: python bench.py layernorm --variant 3
     */

Lists (`bench.py --list`) and the README's table are generated from these fields.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

FIELDS = ("changed", "teaches", "run")
TITLE = re.compile(r"^(?P<layer>[a-z0-9_]+) (?P<pass_name>[a-z]+), variant (?P<number>\d+): (?P<title>.+)$")


@dataclass(frozen=True)
class VariantHeader:
    layer: str
    pass_name: str
    number: int
    title: str
    changed: str
    teaches: str
    run: str


class HeaderError(ValueError):
    pass


def parse_header(text: str, where: str) -> VariantHeader:
    match = re.match(r"\s*/\*(.*?)\*/", text, re.S)
    if not match:
        raise HeaderError(f"{where}: must start with a /* ... */ header (see 'Adding a variant' in README.md)")
    lines = [re.sub(r"^\s*\*? ?", "", line).rstrip() for line in match.group(1).splitlines()]
    lines = [line for line in lines]
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        raise HeaderError(f"{where}: empty header")
    title = TITLE.match(lines[0].strip())
    if not title:
        raise HeaderError(f"{where}: first header line must read 'LAYER PASS, variant N: TITLE', got {lines[0]!r}")
    fields: dict[str, list[str]] = {}
    current = None
    for line in lines[1:]:
        key = re.match(r"^(Changed|Teaches|Run):\s*(.*)$", line.strip())
        if key:
            current = key.group(1).lower()
            fields[current] = [key.group(2)]
        elif current and line.strip():
            fields[current].append(line.strip())
        elif not line.strip():
            current = None
    missing = [f.title() + ":" for f in FIELDS if not fields.get(f) or not " ".join(fields[f]).strip()]
    if missing:
        raise HeaderError(f"{where}: header lacks {', '.join(missing)}")
    return VariantHeader(
        layer=title.group("layer"), pass_name=title.group("pass_name"), number=int(title.group("number")),
        title=title.group("title").strip(), **{f: " ".join(fields[f]).strip() for f in FIELDS})
