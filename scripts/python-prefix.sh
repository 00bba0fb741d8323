#!/usr/bin/env bash
# The directory a container must see, at the same path, to run the given
# virtualenv's Python: the prefix of the Python the venv was made from
# (e.g. a pyenv build under /root/.pyenv), or, for Debian's own python3
# (prefix /usr, already in the Pi image), just its standard library.
set -euo pipefail
python=${1:?usage: python-prefix.sh VENV_PYTHON}
prefix=$("$python" -c 'import sys; print(sys.base_prefix)')
if [ "$prefix" = /usr ]; then
  "$python" -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])'
else
  printf '%s\n' "$prefix"
fi
