#!/bin/sh
# The Debian packages the test suite runs, installed when missing (first step of the README's
# test command, which .ci/run runs as it is).
set -eu
missing=""
need() { command -v "$1" >/dev/null 2>&1 || missing="$missing $2"; }
need_file() { [ -e "$1" ] || missing="$missing $2"; }
need eu-elflint elfutils          # every output is checked by eu-elflint
need readelf binutils             # ... and readelf, objdump, nm
need objdump binutils
need nm binutils
need strace strace
need gdb gdb                      # the debug info's tests run gdb
need gdb-multiarch gdb-multiarch  # ... on AArch64 programs too
need gcc gcc                      # C objects linked into Toy programs: from gcc,
need tcc tcc                      # tcc
need clang clang                  # and clang
need rsvg-convert librsvg2-bin    # renders toyc inspect's maps
need qemu-aarch64 qemu-user       # AArch64 programs run under qemu's user-mode emulator
need aarch64-linux-gnu-objdump binutils-aarch64-linux-gnu  # ... and are read by its binutils
need aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu  # ... and linked with C by its gcc
# shared libraries linked into Toy programs (-lz, -lncurses): their link-time files and headers
need_file /usr/include/zlib.h zlib1g-dev
need_file /usr/include/ncurses.h libncurses-dev
[ -z "$missing" ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
# (binutils may be named more than once)
packages=$(echo $missing | tr ' ' '\n' | sort -u | tr '\n' ' ')
echo "installing:$missing" | tr -s ' ' >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
