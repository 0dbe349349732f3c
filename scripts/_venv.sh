# Sourced by scripts/serve and scripts/test: make .venv and install jixiao into it only when needed.
#
# `ensure_venv EXTRAS` installs `.[EXTRAS]` (or `.` when EXTRAS is empty) the first time, and again
# only when pyproject.toml (or the Python version) changed since: a stamp in .venv records the hash
# of what was installed. The code itself is installed editable, so edits need no reinstall.
# The first install takes a few minutes and shows pip's progress; later starts take a second.

ensure_venv() {
  local extras="${1:-}" spec="." stamp want
  [ -n "$extras" ] && spec=".[$extras]"
  if [ ! -x .venv/bin/python ]; then
    echo "jixiao: creating .venv (Python $(python3 -c 'import sys; print(sys.version.split()[0])'))" >&2
    python3 -m venv .venv
  fi
  want="$( (cat pyproject.toml; .venv/bin/python -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)"
  for stamp in ".venv/.jixiao-installed-${extras:-base}" .venv/.jixiao-installed-test; do
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
      return 0
    fi
  done
  echo "jixiao: installing ${spec} into .venv (first time: a few minutes) …" >&2
  .venv/bin/python -m pip install --upgrade pip --progress-bar on >&2
  .venv/bin/python -m pip install -e "$spec" --progress-bar on >&2
  echo "$want" > ".venv/.jixiao-installed-${extras:-base}"
  echo "jixiao: dependencies installed" >&2
}
