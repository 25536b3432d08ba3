#!/usr/bin/env bash
# Wheel-install smoke test: build the wheel, install it with its dependencies into a fresh
# venv in a temporary folder (pip's cache is reused), and run the installed `librex-alloc`
# from outside the repository: --help, a 20-round `run`, `bench paper --quick` with
# LIBREX_DATA naming the committed excerpts, and once without it (one line, exit 2).
# PYTHON: the interpreter that builds the wheel and the venv (default: the repo's .venv, made
# by `make test`, else python3).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON="$(command -v python3)"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/librex-wheel-XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
t0=$(date +%s)
step() { echo "wheel smoke [$(( $(date +%s) - t0 )) s]: $*"; }

quietly() {  # run "$@" with its output in a log, shown only when it fails
    "$@" >"$TMP/step.log" 2>&1 || { cat "$TMP/step.log" >&2; return 1; }
}

step "building the wheel"
quietly "$PYTHON" -m pip wheel --no-deps -w "$TMP/dist" "$REPO"
WHEEL="$(ls "$TMP"/dist/librex_alloc-*.whl)"
if unzip -l "$WHEEL" | grep -E "\.(csv|txt)$" | grep -qv "dist-info"; then
    echo "wheel smoke: data files inside the wheel" >&2
    exit 1
fi

step "installing $(basename "$WHEEL") with its dependencies into a fresh venv"
"$PYTHON" -m venv "$TMP/venv"
quietly "$TMP/venv/bin/python" -m pip install "$WHEEL"
BIN="$TMP/venv/bin"

cd "$TMP"  # outside the repository: nothing may come from the checkout
unset PYTHONPATH LIBREX_DATA RAY_ADDRESS

step "librex-alloc --help"
"$BIN/librex-alloc" --help >/dev/null

step "librex-alloc run (20 rounds, local Ray)"
quietly "$BIN/librex-alloc" run --agents 200 --shards 1 --rounds 20 --out "$TMP/run" \
    --no-progress --no-plot
cp "$TMP/step.log" "$TMP/run.txt"
grep -q "^rounds *20 in" "$TMP/run.txt"
test -s "$TMP/run/rounds.parquet"

step "librex-alloc bench paper --quick with LIBREX_DATA=tests/data"
LIBREX_DATA="$REPO/tests/data" quietly "$BIN/librex-alloc" bench paper --quick \
    --out "$TMP/paper" --no-progress
test -s "$TMP/paper/RESULTS.md"

step "librex-alloc bench paper --quick without data: one line, exit 2"
code=0
"$BIN/librex-alloc" bench paper --quick --out "$TMP/paper2" --no-progress 2>"$TMP/err" \
    || code=$?
last="$(tail -n 1 "$TMP/err")"
if [ "$code" != 2 ] || grep -q Traceback "$TMP/err" || [ "$(grep -c "error:" "$TMP/err")" != 1 ] \
        || [[ "$last" != *"data not found"*"LIBREX_DATA="* ]]; then
    echo "wheel smoke: expected one line naming the missing data and LIBREX_DATA, exit 2;" \
         "got exit $code:" >&2
    cat "$TMP/err" >&2
    exit 1
fi
echo "  $last"

step "ok"
