#!/usr/bin/env bash
# Installs a built objstore tree into a fresh prefix, then configures, builds
# and runs the consumer project in this directory against that prefix.
#
# Usage: check.sh <cmake> <objstore build dir> <consumer source dir> <c++>
#
# Everything happens under one mkdtemp directory (removed on exit), so
# parallel ctest runs never share files.
set -euo pipefail

cmake=$1
build_dir=$2
consumer_src=$3
cxx=$4

work=$(mktemp -d "${TMPDIR:-/tmp}/objstore-install-XXXXXX")
trap 'rm -rf "$work"' EXIT

run() {
  echo "+ $*"
  "$@"
}

run "$cmake" --install "$build_dir" --prefix "$work/prefix"
run "$cmake" -S "$consumer_src" -B "$work/build" \
  -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DOBJSTORE_EXPECTED_PREFIX="$work/prefix"
run "$cmake" --build "$work/build" -j2
run "$work/build/consumer" "$work/fs-root"
run "$work/build/cluster_consumer"
