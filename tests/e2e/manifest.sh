#!/bin/sh
# manifest.sh: prints one line per entry of the tree under the current
# directory, sorted by path, so that two trees are equal iff their manifests
# are:
#
#   path|type|mode|uid:gid|size|mtime|md5 or link target
#
# Directory sizes and mtimes are left out (they depend on the file system
# and on the order entries were added), and so are symlink mtimes (busybox
# tar does not set them). Owners are written only when E2E_OWNERS=1: the host
# can preserve them only when it unpacks as root.
#
# Both sides run it with the same busybox (the host sets BUSYBOX to the
# unpacked binary), so the formatting of stat and md5sum is identical.
# A few processes in all (find -exec ... +), which matters under emulation.
set -e
bb=${BUSYBOX:-busybox}
tmp=${TMPDIR:-/tmp}/manifest.$$
mkdir "$tmp"
trap 'rm -rf "$tmp"' EXIT
$bb find . -type f -exec $bb md5sum {} + > "$tmp/md5"
$bb find . -type l -exec $bb stat -c '%n|%N' {} + > "$tmp/links"
$bb find . -exec $bb stat -c '%n|%F|%a|%u:%g|%s|%Y' {} + > "$tmp/stat"
$bb awk -v owners="${E2E_OWNERS:-0}" '
  FILENAME ~ /md5$/ { sum[substr($0, 35)] = $1; next }
  FILENAME ~ /links$/ {
    p = index($0, "|"); n = substr($0, 1, p - 1)
    t = substr($0, p + 1); q = index(t, "\x27 -> \x27")
    target[n] = substr(t, q + 6, length(t) - q - 6); next
  }
  {
    split($0, f, "|")
    n = f[1]; type = f[2]; size = f[5]; mtime = f[6]; extra = ""
    if (type ~ /^regular/) { type = "f"; extra = sum[n] }
    else if (type == "directory") { type = "d"; size = "-"; mtime = "-" }
    else if (type == "symbolic link") { type = "l"; mtime = "-"; extra = target[n] }
    if (owners != 1) f[4] = "-"
    print n "|" type "|" f[3] "|" f[4] "|" size "|" mtime "|" extra
  }' "$tmp/md5" "$tmp/links" "$tmp/stat" | LC_ALL=C $bb sort
