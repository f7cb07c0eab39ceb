"""Reading lld's link map (`-Wl,-Map=FILE`; build.rs writes one when
KONGCTL_LINK_MAP names it). Shared by order-file.py and resident-pages.py.
"""
import re

# VMA LMA Size Align, then the output section, an input section indented
# by 8 (`object:(section)`), or a symbol indented by 16.
ROW = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+ ( *)(.*)$")
OUTPUT, INPUT, SYMBOL = 0, 8, 16


def rows(path):
    """(address, size, kind, name) of each line of the map: kind is OUTPUT,
    INPUT or SYMBOL; an input section's name is its section's, without the
    object it came from."""
    with open(path) as f:
        for line in f:
            m = ROW.match(line.rstrip("\n"))
            if not m:
                continue
            kind, name = len(m.group(3)), m.group(4)
            if kind == INPUT:
                section = re.search(r"\(([^()]*)\)$", name)
                if not section:
                    continue
                name = section.group(1)
            yield int(m.group(1), 16), int(m.group(2), 16), kind, name
