#!/usr/bin/env python3
"""Helper of scripts/order-file.sh (see there for why and how).

  order-file.py order BINARY MAP CALLGRIND_OUT...
      prints the functions that ran in BINARY (the path callgrind names as
      its object), in first-seen order across the outputs: the symbol of
      each lld input section (`.text.<symbol>`, `.text.unlikely.<symbol>`)
      holding an address callgrind saw, or for a plain `.text` section (C
      and assembly) the symbol the map lists at or before the address.
  order-file.py placed ORDER MAP
      says how many of ORDER's functions MAP shows at the start of .text.
"""
import bisect
import re
import sys

import lld_map

SECTION = re.compile(r"^(\.text(?:\.(?:unlikely|hot|startup|exit))?)(?:\.(\S+))?$")
# Valgrind loads a position-independent executable at 0x108000 (amd64);
# callgrind names code without a symbol by its link-time address (seen with
# valgrind 3.19), but the base that places the most addresses is taken.
BASES = (0, 0x108000)


def text_layout(map_path):
    """[(start, end, [(addr, symbol)...])] of the input sections in .text."""
    sections, in_text = [], False
    for vma, size, kind, name in lld_map.rows(map_path):
        if kind == lld_map.OUTPUT:
            # Only .text holds the functions.
            in_text = name == ".text"
            continue
        if not in_text:
            continue
        if kind == lld_map.INPUT:
            s = SECTION.match(name)
            if s:
                syms = [(vma, s.group(2))] if s.group(2) else []
                sections.append([vma, vma + size, syms, s.group(2) is None])
        elif kind == lld_map.SYMBOL and sections and sections[-1][3]:
            # A symbol of a plain .text section: C and assembly names are
            # not mangled, so the map's (demangled) name is the name.
            sections[-1][2].append((vma, name))
    sections.sort()
    return sections


def order(binary, map_path, outs):
    sections = text_layout(map_path)
    starts = [s[0] for s in sections]
    # callgrind --dump-instr=yes: a cost line starts with the address of an
    # instruction that ran, absolute (0x..), relative to the line before
    # (+N, -N) or the same (*); a calls= line names its target absolutely
    # and does not move that position.
    entry = re.compile(r"^(c?)ob=\((\d+)\)(?: (.*))?$")
    runs = []
    for path in outs:
        addrs = set()
        runs.append(addrs)
        obs, ob, last = {}, None, 0
        with open(path) as f:
            for line in f:
                head = line[:1]
                if head in "0123456789+-*" and line.strip():
                    pos = line.split(None, 1)[0]
                    if pos.startswith("0x"):
                        last = int(pos, 16)
                    elif pos[0] in "+-":
                        last += int(pos)
                    elif pos != "*":
                        last = int(pos)
                    if ob == binary:
                        addrs.add(last)
                    continue
                m = entry.match(line.rstrip("\n"))
                if not m:
                    continue
                callee, ident, name = m.groups()
                if name is not None:
                    obs[ident] = name
                if not callee:
                    ob = obs.get(ident)
    # Each run's new functions in address order (the build's own order,
    # which keeps a crate's functions near each other).
    addrs = [a for run in runs for a in sorted(run)]

    def symbol(addr):
        i = bisect.bisect_right(starts, addr) - 1
        if i < 0 or addr >= sections[i][1] or not sections[i][2]:
            return None
        syms = sections[i][2]
        j = max(bisect.bisect_right([a for a, _ in syms], addr) - 1, 0)
        return syms[j][1]

    base = max(BASES, key=lambda b: sum(symbol(a - b) is not None for a in addrs))
    seen, names, unplaced = set(), [], 0
    for addr in addrs:
        sym = symbol(addr - base)
        if sym is None:
            unplaced += 1
        elif sym not in seen:
            seen.add(sym)
            names.append(sym)
    print("\n".join(names))
    print(f"{len(names)} functions from {len(addrs)} instruction addresses "
          f"({unplaced} outside .text's named sections)", file=sys.stderr)
    if unplaced * 10 > len(addrs):
        sys.exit("order-file: over a tenth of the addresses fell outside .text: "
                 "is the map from the binary that ran?")


def placed(order_path, map_path):
    wanted = [l.strip() for l in open(order_path) if l.strip()]
    sections = text_layout(map_path)
    where = {}
    for start, end, syms, _ in sections:
        for _, sym in syms:
            where.setdefault(sym, (start, end))
    found = [where[s] for s in wanted if s in where]
    if not found:
        sys.exit("order-file: none of the listed functions is in the build")
    span = max(e for _, e in found) - min(s for s, _ in found)
    size = sum(e - s for s, e in found)
    print(f"placed {len(found)} of {len(wanted)} listed functions: "
          f"{size / 2**20:.2f} MiB of code in the first {span / 2**20:.2f} MiB of .text")


if __name__ == "__main__":
    if sys.argv[1] == "order":
        order(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "placed":
        placed(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
