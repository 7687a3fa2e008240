#!/usr/bin/env bash
# guest_assets.sh CACHE_DIR
#
# Prepares everything the end-to-end guest needs, from Debian's package
# registry only, in CACHE_DIR (kept between runs; safe to delete):
#
#   vmlinuz      a stock Debian 12 kernel (linux-image-amd64's dependency)
#   initrd.img   busybox-static, the kernel's own NFS and virtio modules,
#                the guest scripts (init.sh, session.sh, manifest.sh) and the
#                tar step's input (a Debian package's data.tar and the
#                manifest of that tree as unpacked on the host)
#   busybox      the same busybox, so the host computes the tree manifest
#                with the very tool the guest uses (identical formatting)
#
# Packages are fetched with `apt-get download` and unpacked with dpkg-deb:
# nothing is installed and the host's kernel is never touched (depmod and
# modprobe --show-depends only read the unpacked tree under CACHE_DIR).
# Each stage is redone only when its inputs changed, so a second run costs
# well under a second. Concurrent runs serialize on a lock file.
set -euo pipefail

CACHE=${1:?usage: guest_assets.sh CACHE_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
# The package whose data the tar step unpacks in the guest: manpages-dev,
# ~2,300 entries (~900 files, ~1,400 symlinks, a few directories) in 3.7 MB:
# thousands of both kinds while the emulated client (~30 ms a create) unpacks
# it in about a minute; see README.md.
TREE_PKG=${E2E_TREE_PKG:-manpages-dev}
# Kernel modules the guest loads (with their dependencies, in order).
MODULES="virtio_pci virtio_net nfsv4 nfs_layout_nfsv41_files"

mkdir -p "$CACHE/debs"
CACHE=$(cd "$CACHE" && pwd)
exec 9>"$CACHE/.lock"
flock -w 900 9 || { echo "guest_assets: lock $CACHE/.lock busy" >&2; exit 1; }

log() { echo "guest_assets: $*" >&2; }
for tool in qemu-system-x86_64 depmod modprobe cpio dpkg-deb apt-get flock; do
  command -v "$tool" >/dev/null || {
    log "missing $tool: run scripts/install-deps.sh"; exit 1; }
done

# apt-get download needs package lists; refresh them once if a lookup fails
# (a fresh machine may never have run apt-get update).
updated=0
apt_update_once() {
  ((updated)) && return 1
  updated=1
  log "apt-get update"
  apt-get update -qq >&2 || return 1
}

# Prints the path of the cached .deb of package $1, downloading it if no
# version of it is cached yet.
fetch_deb() {
  local pkg=$1 deb
  deb=$(ls "$CACHE/debs/${pkg}"_*.deb 2>/dev/null | head -1 || true)
  if [[ -z $deb ]]; then
    log "apt-get download $pkg"
    (cd "$CACHE/debs" && { apt-get download -q "$pkg" >&2 ||
       { apt_update_once && apt-get download -q "$pkg" >&2; }; }) ||
      { log "cannot download $pkg"; exit 1; }
    deb=$(ls "$CACHE/debs/${pkg}"_*.deb | head -1)
  fi
  echo "$deb"
}

# ---- the kernel: the image linux-image-amd64 points at today, or the one
# already cached (so later runs need no network).
kdeb=$(ls "$CACHE"/debs/linux-image-[0-9]*-amd64_*.deb 2>/dev/null | head -1 || true)
if [[ -z $kdeb ]]; then
  kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
         awk '/Depends: linux-image-[0-9]/ {print $2; exit}' || true)
  if [[ -z $kpkg ]] && apt_update_once; then
    kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
           awk '/Depends: linux-image-[0-9]/ {print $2; exit}' || true)
  fi
  [[ -n $kpkg ]] || { log "cannot resolve linux-image-amd64"; exit 1; }
  kdeb=$(fetch_deb "$kpkg")
fi
bbdeb=$(fetch_deb busybox-static)
treedeb=$(fetch_deb "$TREE_PKG")

# ---- unpack only what the guest needs from the kernel package (the whole
# tree is ~400 MB): the image, the module metadata, and the module folders
# where the network and NFS stacks live.
K=$CACHE/kernel
if [[ ! -e $K/.done || $kdeb -nt $K/.done ]]; then
  log "unpacking $(basename "$kdeb")"
  rm -rf "$K"; mkdir -p "$K"
  dpkg-deb --fsys-tarfile "$kdeb" | tar -x -C "$K" --wildcards \
    './boot/vmlinuz-*' './lib/modules/*/modules.builtin*' \
    './lib/modules/*/modules.order' './lib/modules/*/kernel/fs/*' \
    './lib/modules/*/kernel/net/*' './lib/modules/*/kernel/lib/*' \
    './lib/modules/*/kernel/crypto/*' './lib/modules/*/kernel/drivers/virtio/*' \
    './lib/modules/*/kernel/drivers/net/*'
  kv=$(ls "$K/lib/modules" | head -1)
  depmod -b "$K" "$kv"
  touch "$K/.done"
fi
KV=$(ls "$K/lib/modules" | head -1)
KDIR=$K/lib/modules/$KV

BB=$CACHE/busybox
if [[ ! -x $BB || $bbdeb -nt $BB ]]; then
  rm -rf "$CACHE/bb"; mkdir -p "$CACHE/bb"
  dpkg-deb -x "$bbdeb" "$CACHE/bb"
  cp "$CACHE/bb/bin/busybox" "$BB.tmp" && mv "$BB.tmp" "$BB"
fi

# ---- base image: busybox, modules, users. Rebuilt when the kernel,
# busybox or this script change.
BASE=$CACHE/base.cpio.gz
if [[ ! -s $BASE || $K/.done -nt $BASE || $BB -nt $BASE || $0 -nt $BASE ]]; then
  log "building base image"
  R=$CACHE/base-root
  rm -rf "$R"
  mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,mnt,etc,root,e2e}
  mkdir -p "$R/home/user"
  cp "$BB" "$R/bin/busybox"
  # Dependencies first, each module once.
  for m in $MODULES; do
    modprobe -d "$K" -S "$KV" --show-depends "$m"
  done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' > "$CACHE/modules.list"
  : > "$R/e2e/modules"
  while read -r ko; do
    rel=${ko#"$KDIR"/}
    mkdir -p "$R/lib/modules/$KV/$(dirname "$rel")"
    cp "$ko" "$R/lib/modules/$KV/$rel"
    echo "/lib/modules/$KV/$rel" >> "$R/e2e/modules"
  done < "$CACHE/modules.list"
  # Numeric owners on the wire; names only for `ls -l` in the guest.
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' \
    > "$R/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\n' > "$R/etc/group"
  echo '127.0.0.1 localhost' > "$R/etc/hosts"
  ln -s /proc/mounts "$R/etc/mtab"
  (cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$BASE.tmp"
  mv "$BASE.tmp" "$BASE"
  rm -rf "$R"
fi
if [[ ! -e $CACHE/vmlinuz || $K/.done -nt $CACHE/vmlinuz ]]; then
  cp "$K/boot/vmlinuz-$KV" "$CACHE/vmlinuz.tmp" && mv "$CACHE/vmlinuz.tmp" "$CACHE/vmlinuz"
fi

# ---- the tar step's input: the package's data.tar and its manifest as
# unpacked on the host by GNU tar (an implementation independent of the
# guest's busybox tar), manifest written by busybox like the guest's.
TREE=$CACHE/tree.cpio.gz
if [[ ! -s $TREE || $treedeb -nt $TREE || $HERE/manifest.sh -nt $TREE || $BB -nt $TREE ]]; then
  log "building tree image from $(basename "$treedeb")"
  T=$CACHE/tree-root
  rm -rf "$T"; mkdir -p "$T/e2e" "$T/unpacked"
  dpkg-deb --fsys-tarfile "$treedeb" > "$T/e2e/tree.tar"
  # Owners survive unpacking only as root; otherwise neither side compares them.
  owners=0; [[ $(id -u) == 0 ]] && owners=1
  echo "$owners" > "$T/e2e/tree.owners"
  tar -x -C "$T/unpacked" -p -f "$T/e2e/tree.tar"
  (cd "$T/unpacked" && BUSYBOX=$BB E2E_OWNERS=$owners "$BB" sh "$HERE/manifest.sh") \
    > "$T/e2e/tree.manifest"
  basename "$treedeb" > "$T/e2e/tree.name"
  (cd "$T" && find e2e | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$TREE.tmp"
  mv "$TREE.tmp" "$TREE"
  rm -rf "$T"
fi

# ---- the scripts: small, rebuilt every run so edits take effect at once.
S=$CACHE/scripts-root
rm -rf "$S"; mkdir -p "$S/e2e"
install -m 755 "$HERE/init.sh" "$S/init"
install -m 755 "$HERE/session.sh" "$HERE/manifest.sh" "$S/e2e/"
(cd "$S" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1) > "$CACHE/scripts.cpio.gz"
rm -rf "$S"

# The kernel unpacks concatenated cpio archives in order; later files win.
cat "$BASE" "$TREE" "$CACHE/scripts.cpio.gz" > "$CACHE/initrd.img.tmp"
mv "$CACHE/initrd.img.tmp" "$CACHE/initrd.img"
log "ready: kernel $KV, initrd $(du -h "$CACHE/initrd.img" | cut -f1), tree $(basename "$treedeb")"
