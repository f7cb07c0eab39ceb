#!/usr/bin/env python3
"""Which parts of a running kongctl's binary are resident (idle RSS work).

usage: scripts/resident-pages.py PID BINARY [MAP]   (as root: /proc/PID/pagemap)

BINARY is the file the process runs. Its symbols come from MAP, the
linker's map of that very build (the release build is stripped):

    KONGCTL_LINK_MAP=/tmp/kongctl.map cargo build --release -p kongctl

or, without MAP, from BINARY itself, built unstripped. An unstripped build
is not the release layout: its symbol names carry other hashes, so
link/listener.order (see scripts/order-file.sh) does not apply to it.

Prints the resident pages of the binary's mappings, grouped by the crate
of the symbols on each page (Rust legacy mangling; "<impl>" for trait
impls whose crate the name does not give, "<no symbol>" for read-only
data and unwind tables).
"""
import bisect
import collections
import re
import struct
import subprocess
import sys

import lld_map

PAGE = 4096


def resident_offsets(pid, binary):
    """File offsets of the binary's resident pages."""
    out = []
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        for line in open(f"/proc/{pid}/maps"):
            f = line.split()
            if len(f) < 6 or f[5] != binary:
                continue
            start, end = (int(x, 16) for x in f[0].split("-"))
            offset = int(f[2], 16)
            pagemap.seek(start // PAGE * 8)
            data = pagemap.read((end - start) // PAGE * 8)
            for i in range(len(data) // 8):
                if struct.unpack_from("<Q", data, i * 8)[0] >> 63:
                    out.append(offset + i * PAGE)
    return out


def loads(binary):
    """(file offset, virtual address, size) of each LOAD segment."""
    text = subprocess.run(["readelf", "-lW", binary], capture_output=True, text=True).stdout
    return [
        (int(f[1], 16), int(f[2], 16), int(f[4], 16))
        for f in (l.split() for l in text.splitlines())
        if f and f[0] == "LOAD"
    ]


def crate(name):
    m = re.match(r"_ZN(\d+)(\w+)", name)
    if not m:
        return "<other>"
    n = int(m.group(1))
    word = m.group(2)[:n]
    return "<impl>" if word.startswith("_") else word


def map_symbols(path):
    """(address, size, symbol) of each input section lld's map names by a
    symbol (`.text.<symbol>`, `.rodata.<symbol>`, ...)."""
    section = re.compile(r"^\.(?:text|rodata|data\.rel\.ro|data|bss|gcc_except_table)"
                         r"(?:\.(?:unlikely|hot|startup|exit))?\.(.+)$")
    out = []
    for vma, size, kind, name in lld_map.rows(path):
        s = section.match(name) if kind == lld_map.INPUT else None
        if s:
            out.append((vma, size, s.group(1)))
    return out


def main():
    pid, binary = int(sys.argv[1]), sys.argv[2]
    offsets = resident_offsets(pid, binary)
    segs = loads(binary)
    if len(sys.argv) > 3:
        syms = sorted(map_symbols(sys.argv[3]))
    else:
        nm = subprocess.run(["nm", "-S", "--defined-only", binary], capture_output=True, text=True).stdout
        syms = sorted(
            (int(f[0], 16), int(f[1], 16), f[3])
            for f in (l.split(None, 3) for l in nm.splitlines())
            if len(f) == 4
        )
    starts = [s[0] for s in syms]
    by_crate = collections.Counter()
    for off in offsets:
        va = next((v + off - o for o, v, size in segs if o <= off < o + size), None)
        names = collections.Counter()
        if va is not None:
            i = bisect.bisect_right(starts, va + PAGE - 1) - 1
            while i >= 0 and syms[i][0] + syms[i][1] > va:
                names[crate(syms[i][2])] += 1
                i -= 1
        by_crate[names.most_common(1)[0][0] if names else "<no symbol>"] += 1
    print(f"{len(offsets) * 4} KiB of {binary} resident")
    for name, pages in by_crate.most_common(30):
        print(f"{pages * 4:6} KiB  {name}")


if __name__ == "__main__":
    main()
