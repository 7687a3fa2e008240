#!/usr/bin/env python3
"""Turns Debian's Contents indexes (apt-file's lists) into a canonical dump
for the ns-migrate scale benchmark (bench/migrate-bench.sh), or, when no
index is at hand offline, writes a synthetic tree of the same shape
(--synthetic N: N paths under /usr/share, /usr/lib, /usr/bin, ... with
Contents-like depths and fan-outs).

  contents_to_dump.py Contents-amd64.gz [Contents-all.gz ...] > contents.dump
  contents_to_dump.py --synthetic 7300000 > synthetic.dump

Output is depth first (docs/dump-format.md): every directory a path implies
becomes a directory entry, written before the entries below it. Paths of
all the files given are merged and deduplicated. Memory stays bounded: zcat
decompresses, sort(1) sorts externally (temporary files under $TMPDIR,
default /var/tmp), and this script keeps only the open directory stack.
Counts go to stderr.
"""
import json
import os
import re
import subprocess
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


# A JSON string needs escapes only for these; everything else (UTF-8
# included) is copied as it is.
NEEDS_ESCAPE = re.compile(rb'[\x00-\x1f"\\]')


def bad_key(key):
    """docs/dump-format.md: each component 1..255 bytes, not "." or "..",
    the path at most 4096 bytes. The cheap tests first: nearly every path
    passes them."""
    if (len(key) < 256 and b"\x01\x01" not in key and b"." not in key[:1]
            and b"\x01." not in key and key):
        return False
    return len(key) > 4094 or any(
        c in (b"", b".", b"..") or len(c) > 255 for c in key.split(b"\x01"))


def quote(p):
    if NEEDS_ESCAPE.search(p) is None:
        return b'"' + p + b'"'
    return json.dumps(p.decode("utf-8", "replace"),
                      ensure_ascii=False).encode("utf-8")


def sorted_keys(paths, stats):
    """The paths of the Contents files, "/" mapped to \x01 so that a plain
    byte sort is depth first (docs/dump-format.md), sorted and deduplicated
    by sort(1): an external merge sort with bounded memory, in a process of
    its own (decompression in zcat's or lz4cat's)."""
    env = dict(os.environ, LC_ALL="C")
    sorter = subprocess.Popen(
        ["sort", "-u", "-S", "512M", "--parallel=2", "-T",
         os.environ.get("TMPDIR", "/var/tmp")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, bufsize=1 << 20)
    sink = sorter.stdin
    for path in paths:
        # apt-file keeps its lists lz4-compressed; the mirror serves gzip.
        tool = ["lz4cat"] if path.endswith(".lz4") else ["zcat", "-f"]
        unzip = subprocess.Popen(tool + ["--", path], stdout=subprocess.PIPE,
                                 bufsize=1 << 20)
        for line in unzip.stdout:
            # "PATH<spaces>SECTION/PACKAGE,..."; PATH may hold spaces itself.
            fields = line.rsplit(None, 1)
            if len(fields) != 2 or (fields[0] == b"FILE" and
                                    fields[1] == b"LOCATION"):
                continue
            stats["lines"] += 1
            key = fields[0].strip(b"/").replace(b"/", b"\x01")
            if bad_key(key):
                stats["refused"] += 1
                continue
            sink.write(key + b"\n")
        if unzip.wait() != 0:
            sys.exit("%s failed on %s" % (tool[0], path))
    sink.close()
    return sorter


def from_contents(paths, out):
    """Streams the sorted paths: the stack of open directories is all that
    is kept. A directory line is written the first time a path below it
    shows up; a path that is also a directory (another package ships files
    below it) becomes the directory."""
    stats = {"lines": 0, "refused": 0, "files": 0, "dirs": 1, "both": 0}
    sorter = sorted_keys(paths, stats)
    out.write((HEADER % ("contents:" + ",".join(paths))).encode())
    out.write(b'{"path":"/","type":"d","mode":"0755","uid":0,"gid":0,'
              b'"mtime":%d}\n' % T)
    dir_fmt = b'{"path":%s,"type":"d","mode":"0755","uid":0,"gid":0,' \
              b'"mtime":%d}\n'
    file_fmt = b'{"path":%s,"type":"f","mode":"0644","uid":0,"gid":0,' \
               b'"size":%d,"mtime":%d}\n'
    open_dirs = []  # components of the innermost open directory
    open_key = b""  # the same, joined by \x01
    write = out.write

    def emit(key, followed_by):
        nonlocal open_key
        dir_key, _, _ = key.rpartition(b"\x01")
        if followed_by.startswith(key + b"\x01"):
            dir_key = key  # also a directory: the next path is below it
            stats["both"] += 1
        if dir_key != open_key:
            # Close what the path is not in, open what is missing.
            dirs = dir_key.split(b"\x01") if dir_key else []
            n = 0
            limit = min(len(open_dirs), len(dirs))
            while n < limit and open_dirs[n] == dirs[n]:
                n += 1
            del open_dirs[n:]
            for comp in dirs[n:]:
                open_dirs.append(comp)
                write(dir_fmt % (quote(b"/" + b"/".join(open_dirs)), T))
                stats["dirs"] += 1
            open_key = dir_key
        if dir_key is not key:
            i = stats["files"]
            stats["files"] += 1
            write(file_fmt % (quote(b"/" + key.replace(b"\x01", b"/")),
                              (i * 7919) % 100000, T + i))

    prev = None
    for line in sorter.stdout:
        key = line[:-1]
        if prev is not None:
            emit(prev, key)
        prev = key
    if prev is not None:
        emit(prev, b"")
    if sorter.wait() != 0:
        sys.exit("sort failed")
    out.flush()
    sys.stderr.write(
        "contents_to_dump: %d lines read, %d refused (bad path), %d files, "
        "%d directories (%d paths both a file and a directory: kept as "
        "directories), %d entries\n" %
        (stats["lines"], stats["refused"], stats["files"], stats["dirs"],
         stats["both"], stats["files"] + stats["dirs"]))


def main():
    out = sys.stdout
    if len(sys.argv) == 3 and sys.argv[1] == "--synthetic":
        synthetic(int(sys.argv[2]), out)
    elif len(sys.argv) >= 2 and not sys.argv[1].startswith("-"):
        with open(sys.stdout.fileno(), "wb", buffering=1 << 20,
                  closefd=False) as out:
            from_contents(sys.argv[1:], out)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
