"""What a variant's loads and stores cost in memory transactions, counted on the CPU emulator.

    python bench.py layernorm --variant 1 --emulate --accesses

Every load and store a kernel executes is recorded (harness/emulator/include/emu_profile.h), the
lanes of each warp are matched into warp-level requests, and each request is counted as Nsight
Compute's memory tables count it: the 32-byte sectors a global request touches, the wavefronts a
shared-memory request takes (more than ideal: bank conflicts). Per source line, beside the fewest
transactions the same bytes could take, so the table says where a variant wastes bandwidth: the
uncoalesced row walk of layernorm's variant 1, a shared tile whose row pitch puts a warp's reads
in one bank. No GPU needed, and nothing about time: the GPU's caches and scheduling are not modelled.
"""
from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from harness.emulator import INCLUDE_DIR, LaunchAccesses, recording_accesses


@dataclass
class LineCounts:
    """The requests of one kind (space, direction, width) issued from one source line of a kernel."""
    kernel: str
    line: str  # "1_thread_per_row.cu:31", the variant's own line when the access is in a helper it calls
    via: str  # the helper's line ("common.cuh:101"), or ""
    space: str
    write: bool
    size: int
    requests: int = 0
    lanes: int = 0
    transactions: int = 0
    ideal: int = 0

    @property
    def access(self) -> str:
        return f"{self.space} {'store' if self.write else 'load'} {self.size}B"

    @property
    def unit(self) -> str:
        return "sectors" if self.space == "global" else "wavefronts"

    @property
    def per_request(self) -> float:
        return self.transactions / self.requests if self.requests else 0.0

    @property
    def efficiency(self) -> float:
        """Ideal over actual transactions: 1.0 when coalesced (global) or conflict-free (shared)."""
        return self.ideal / self.transactions if self.transactions else 1.0


def source_lines(library: Path, offsets: list[int], source_name: str) -> dict[int, tuple[str, str]]:
    """For each instruction offset in `library`: (the line in `source_name`, the helper's line or "").

    The offsets are return addresses (the instruction after the hook's call), so the call is one
    byte before. addr2line -i lists the inlined frames innermost first.
    """
    if not offsets:
        return {}
    tool = shutil.which("addr2line")
    if tool is None:
        return {offset: (f"+{offset:#x}", "") for offset in offsets}
    output = subprocess.run([tool, "-a", "-i", "-e", str(library), *[f"{offset - 1:#x}" for offset in offsets]],
                            capture_output=True, text=True).stdout
    frames: dict[int, list[str]] = {}
    current = None
    for line in output.splitlines():
        if line.startswith("0x"):
            current = int(line, 16) + 1
            frames[current] = []
        elif current is not None:
            frames[current].append(line.split(" (discriminator")[0].strip())
    resolved = {}
    for offset in offsets:
        chain = [f for f in frames.get(offset, []) if not f.startswith("??") and
                 not f.startswith(str(INCLUDE_DIR))]
        named = [f"{Path(f.rsplit(':', 1)[0]).name}:{f.rsplit(':', 1)[1]}" for f in chain if ":" in f]
        own = [f for f in named if f.startswith(source_name + ":")]
        line = own[-1] if own else (named[-1] if named else f"+{offset:#x}")
        via = named[0] if named and named[0] != line else ""
        resolved[offset] = (line, via)
    return resolved


def by_line(launches: list[LaunchAccesses], source_name: str) -> list[LineCounts]:
    """Every launch's sites summed per kernel, source line and kind of access."""
    totals: dict[tuple, LineCounts] = {}
    offsets_of: dict[Path, set[int]] = defaultdict(set)
    for launch in launches:
        offsets_of[launch.library].update(site.pc_offset for site in launch.sites)
    lines = {library: source_lines(library, sorted(offsets), source_name) for library, offsets in offsets_of.items()}
    for launch in launches:
        for site in launch.sites:
            line, via = lines[launch.library][site.pc_offset]
            key = (launch.kernel, line, via, site.space, site.write, site.size)
            counts = totals.setdefault(key, LineCounts(launch.kernel, line, via, site.space, site.write, site.size))
            counts.requests += site.requests
            counts.lanes += site.lanes
            counts.transactions += site.transactions
            counts.ideal += site.ideal
    order = {name: i for i, name in enumerate(dict.fromkeys(launch.kernel for launch in launches))}

    def line_number(counts: LineCounts) -> int:
        tail = counts.line.rsplit(":", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    return sorted(totals.values(), key=lambda c: (order[c.kernel], line_number(c), c.space, c.write, c.via))


@dataclass
class AccessProfile:
    rows: list[LineCounts]
    unaligned_lanes: int  # lane traces matched by occurrence (emu_profile.h): those counts are approximate


def profile_variant(variant, case, config: dict):
    """Check `variant` at `config` on the emulator with every access recorded; returns the check's
    result and the AccessProfile."""
    from harness.check import check_variant

    with recording_accesses() as launches:
        result, _ = check_variant(variant, case, config)
    return result, AccessProfile(by_line(launches, variant.source.name),
                                 sum(launch.unaligned_lanes for launch in launches))


def summary(profile: AccessProfile) -> str:
    """One line: each kind of traffic's efficiency over the whole call."""
    rows = profile.rows
    parts = []
    for space, write in (("global", False), ("global", True), ("shared", False), ("shared", True)):
        chosen = [r for r in rows if r.space == space and r.write == write]
        if not chosen:
            continue
        transactions, ideal = sum(r.transactions for r in chosen), sum(r.ideal for r in chosen)
        what = f"{space} {'stores' if write else 'loads'}"
        if space == "global":
            parts.append(f"{what} {100 * ideal / transactions:.0f}% efficient ({transactions:,} sectors, ideal {ideal:,})")
        else:
            parts.append(f"{what} {transactions - ideal:,} bank-conflict wavefronts ({transactions:,}, ideal {ideal:,})")
    text = "; ".join(parts) if parts else "no global or shared memory accesses"
    if profile.unaligned_lanes:
        text += (f" ({profile.unaligned_lanes:,} lane traces differed too much from their warp's to align: "
                 "those requests are approximate)")
    return text


def format_table(profile: AccessProfile) -> str:
    """Plain text, one row per source line and kind of access (the CLI prints it under the check)."""
    rows = profile.rows
    headers = ("kernel", "line", "access", "requests", "per request", "ideal", "efficiency")
    table = [headers]
    for r in rows:
        line = r.line + (f" (via {r.via})" if r.via else "")
        table.append((r.kernel, line, r.access, f"{r.requests:,}", f"{r.per_request:.1f} {r.unit}",
                      f"{r.ideal / r.requests:.1f}" if r.requests else "-", f"{100 * r.efficiency:.0f}%"))
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]
    right = {3, 4, 5, 6}
    return "\n".join("  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))).rstrip() for row in table)
