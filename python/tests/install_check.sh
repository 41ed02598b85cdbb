#!/usr/bin/env bash
# Installs the build into a fresh prefix and imports objstore from there
# (not from the build tree), running a put/run/fetch on a local cluster.
#   install_check.sh <cmake> <build dir> <python> <python dir in prefix>
set -euo pipefail
cmake=$1
build_dir=$2
python=$3
python_dir=$4
work=$(mktemp -d "${TMPDIR:-/tmp}/objstore-py-install-XXXXXX")
trap 'rm -rf "$work"' EXIT
"$cmake" --install "$build_dir" --prefix "$work/prefix" >/dev/null
cd "$work" # nothing of the source or build tree on sys.path
PYTHONPATH="$work/prefix/$python_dir" "$python" - "$work/prefix" <<'PY'
import sys
import numpy as np
import objstore
assert objstore.__file__.startswith(sys.argv[1]), objstore.__file__
with objstore.local_cluster(workers=1) as d:
    b = objstore.GraphBuilder()
    x = b.input()
    b.output(b.add("sum", [x]))
    (y,) = d.run(b.build(), [d.put(0, np.arange(5, dtype=np.int64))])
    assert int(d.fetch(y)) == 10
print("installed objstore imports and runs from", objstore.__file__)
PY
