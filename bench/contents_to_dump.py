#!/usr/bin/env python3
"""Turns Debian's Contents index (apt-file's lists) into a canonical dump for
the ns-migrate scale benchmark, or, when no index is at hand offline, writes
a synthetic tree of the same shape (--synthetic N: N paths under /usr/share,
/usr/lib, /usr/bin, ... with Contents-like depths and fan-outs).

  contents_to_dump.py Contents-amd64.gz > contents.dump
  contents_to_dump.py --synthetic 7300000 > synthetic.dump

Output is depth first (docs/dump-format.md): directories are derived from
the file paths and each directory's entries follow it. The Contents mode
sorts all paths in memory (a few GB for 7.3 M paths); the synthetic mode
streams.
"""
import gzip
import json
import sys

HEADER = '{"format":"nsnfs-dump","version":1,"source":"%s"}\n'
T = 1700000000000000000


def dir_line(path):
    return '{"path":%s,"type":"d","mode":"0755","uid":0,"gid":0,"mtime":%d}\n' % (
        json.dumps(path, ensure_ascii=False), T)


def file_line(path, i):
    return '{"path":%s,"type":"f","mode":"0644","uid":0,"gid":0,"size":%d,"mtime":%d}\n' % (
        json.dumps(path, ensure_ascii=False), (i * 7919) % 100000, T + i)


def synthetic(n, out):
    out.write(HEADER % ("synthetic:%d" % n))
    out.write(dir_line("/"))
    written = 0
    # /usr/share/doc/pkgN/..., /usr/lib/x86_64-linux-gnu/pkgN/..., ...
    # ~15 files per package directory and 3 levels below the top, like
    # Contents' median package.
    pkg = 0
    out.write(dir_line("/usr"))
    # Areas sharing a parent are adjacent: the output stays depth first.
    areas = ["share/doc", "share/man/man1", "share/locale", "lib/x86_64-linux-gnu", "include"]
    made = set()
    for a, area in enumerate(areas):
        parts = area.split("/")
        for k in range(1, len(parts) + 1):
            d = "/usr/" + "/".join(parts[:k])
            if d not in made:
                made.add(d)
                out.write(dir_line(d))
        base = "/usr/" + area
        while written < n * (a + 1) // len(areas):
            d = "%s/pkg%d" % (base, pkg)
            pkg += 1
            out.write(dir_line(d))
            sub = d + "/sub"
            out.write(dir_line(sub))
            for j in range(12):
                out.write(file_line("%s/file%d.txt" % (sub, j), written))
                written += 1
            for j in range(4):
                out.write(file_line("%s/f%d" % (d, j), written))
                written += 1


def from_contents(path, out):
    opener = gzip.open if path.endswith(".gz") else open
    files = []
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("FILE"):
                continue
            p = line.rsplit(None, 1)[0].strip()
            if p:
                files.append("/" + p)
    files.sort(key=lambda p: p.replace("/", "\x01"))
    out.write(HEADER % ("contents:" + path))
    out.write(dir_line("/"))
    open_dirs = ["/"]
    seen = set()
    for i, p in enumerate(files):
        if p in seen:
            continue
        seen.add(p)
        parts = p.split("/")[1:-1]
        # Close directories this path is not in, open the missing ones.
        prefix = ""
        depth = 0
        for depth, comp in enumerate(parts, 1):
            prefix += "/" + comp
            if depth < len(open_dirs) and open_dirs[depth] == prefix:
                continue
            del open_dirs[depth:]
            open_dirs.append(prefix)
            out.write(dir_line(prefix))
        del open_dirs[len(parts) + 1:]
        out.write(file_line(p, i))


def main():
    out = sys.stdout
    if len(sys.argv) == 3 and sys.argv[1] == "--synthetic":
        synthetic(int(sys.argv[2]), out)
    elif len(sys.argv) == 2:
        from_contents(sys.argv[1], out)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
