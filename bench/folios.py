#!/usr/bin/env python3
"""How a file's pages lie in the page cache: how many of its pages are
heads of large folios, tails of one, or single pages (bench/README, "The
binaries' pages in large folios"). Maps the file and touches each page,
which reads in any page not cached (as single pages: look before a run
would read them), then reads the pages' frames from /proc/self/pagemap and
their flags from /proc/kpageflags. Needs root (both files hide frames from
others).

Usage: sudo python3 bench/folios.py FILE...
"""
import mmap
import os
import struct
import sys

PAGE = mmap.PAGESIZE
COMPOUND_HEAD, COMPOUND_TAIL = 1 << 15, 1 << 16


def folios(path):
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        mapped = mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ)
    pages = (size + PAGE - 1) // PAGE
    for i in range(pages):
        mapped[i * PAGE]
    # The mapping's address: the one line of our maps naming the file.
    real = os.path.realpath(path)
    with open("/proc/self/maps") as maps:
        start = next(int(line.split("-")[0], 16) for line in maps if line.rstrip().endswith(real))
    counts = {"heads": 0, "tails": 0, "single": 0, "absent": 0}
    with open("/proc/self/pagemap", "rb") as pagemap, open("/proc/kpageflags", "rb") as kflags:
        for i in range(pages):
            pagemap.seek((start // PAGE + i) * 8)
            entry = struct.unpack("Q", pagemap.read(8))[0]
            if not entry >> 63:
                counts["absent"] += 1
                continue
            kflags.seek((entry & ((1 << 55) - 1)) * 8)
            flags = struct.unpack("Q", kflags.read(8))[0]
            kind = "heads" if flags & COMPOUND_HEAD else "tails" if flags & COMPOUND_TAIL else "single"
            counts[kind] += 1
    mapped.close()
    return pages, counts


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        pages, c = folios(path)
        print(f"{path}: {pages} pages: {c['heads']} heads and {c['tails']} tails of large folios, "
              f"{c['single']} single pages, {c['absent']} not mapped")


if __name__ == "__main__":
    main()
