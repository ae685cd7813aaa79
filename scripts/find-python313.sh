#!/usr/bin/env bash
# Prints the path of a Python 3.13 interpreter for the Spark 4 lane (make setup-spark4), or exits 2
# with a sentence saying what was tried. In order:
#  1. $PYTHON313 if set (a caller who named one meant it);
#  2. `python3.13` on the PATH, if it runs (a pyenv shim runs only when 3.13 is selected);
#  3. an interpreter pyenv has installed (this project's machines and CI: pyenv 3.13.0);
#  4. `uv python install 3.13` with uv from PyPI (a machine without pyenv; uv downloads a
#     standalone CPython from GitHub, which some networks, this project's included, do not reach).
set -uo pipefail
if [ -n "${PYTHON313:-}" ]; then echo "$PYTHON313"; exit 0; fi
if python3.13 -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1; then
  command -v python3.13; exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
  for candidate in "$(pyenv root)"/versions/3.13*/bin/python3.13; do
    if [ -x "$candidate" ]; then echo "$candidate"; exit 0; fi
  done
fi
uv_dir=".venv-uv"
if { [ -x "$uv_dir/bin/uv" ] || { python3 -m venv "$uv_dir" && "$uv_dir/bin/pip" install --quiet uv; }; } >&2 \
    && "$uv_dir/bin/uv" python install 3.13 >&2; then
  "$uv_dir/bin/uv" python find 3.13; exit 0
fi
echo "no Python 3.13 found for the Spark 4 lane: tried \$PYTHON313, python3.13 on the PATH, pyenv's versions and" \
     "'uv python install 3.13'; install Python 3.13 (e.g. 'pyenv install 3.13') or set PYTHON313=/path/to/python3.13" >&2
exit 2
