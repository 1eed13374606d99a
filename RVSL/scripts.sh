# Shell functions of train.sh and test.sh (sourced, never run).

# usage_if_asked SCRIPT ARG: with ARG --help or -h, print SCRIPT's header comment (its usage) and exit 0.
usage_if_asked() {
    if [ "${2:-}" = "--help" ] || [ "${2:-}" = "-h" ]; then
        sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$1"
        exit 0
    fi
}

# find_python: set PYTHON to the interpreter that runs RVSL. PYTHON from the environment wins; else the
# project's .venv (made by `make venv`) when it exists; else python from PATH. It must find rvsl and torch:
# if not, one line says how to get there, and the script exits with status 2.
find_python() {
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    if [ -z "${PYTHON:-}" ]; then
        if [ -x "$root/.venv/bin/python" ]; then PYTHON=$root/.venv/bin/python; else PYTHON=python; fi
    fi
    if ! "$PYTHON" -c 'import importlib.util as u, sys; sys.exit(not (u.find_spec("rvsl") and u.find_spec("torch")))' \
            2>/dev/null; then
        echo "$(basename "$0"): $PYTHON cannot import rvsl and torch: run 'make venv' in $root (it creates .venv," \
             "used from then on), or set PYTHON to an interpreter that has them" >&2
        exit 2
    fi
}
