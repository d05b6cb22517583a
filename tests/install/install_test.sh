#!/usr/bin/env bash
# `cmake --install` yields the documented layout, and programs build against it with
# pkg-config and with CMake's find_package.
set -euo pipefail
build_dir=$1
source_dir=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
for f in include/loopfast/loopfast.h include/loopfast/loopfast.hpp include/loopfast/winsock.h \
         lib/libloopfast.so bin/loopfast lib/cmake/loopfast/loopfastConfig.cmake \
         lib/pkgconfig/loopfast.pc share/man/man1/loopfast.1 share/man/man1/loopfast-doctor.1 \
         share/man/man3/loopfast_ioctl.3 share/man/man5/loopfast.conf.5 share/man/man7/loopfast.7; do
  [ -e "$prefix/$f" ] || { echo "missing after install: $f"; exit 1; }
done
"$prefix/bin/loopfast" version | grep -q '^loopfast [0-9]'
# pkg-config
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cc -o "$work/pc_consumer" "$source_dir/consumer.c" $(pkg-config --cflags --libs loopfast)
LD_LIBRARY_PATH=$prefix/lib "$work/pc_consumer" | grep -q '^loopfast [0-9]'
# CMake package
cmake -S "$source_dir" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$work/cm" >/dev/null
LD_LIBRARY_PATH=$prefix/lib "$work/cm/consumer" | grep -q '^loopfast [0-9]'
LD_LIBRARY_PATH=$prefix/lib "$work/cm/consumer_cpp" | grep -qx ok
echo "install layout, pkg-config and find_package: ok"
