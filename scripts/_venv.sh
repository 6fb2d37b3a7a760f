# Sourced by scripts/install and scripts/test: which interpreter they use and the venv it gets.
# PYTHON unset: python3 and .venv, as CI and the README run. PYTHON=python3.13: that interpreter, in a venv
# of its own named by its version (.venv-3.13), so one checkout can test on several without reinstalling.
python=${PYTHON:-python3}
venv=.venv
if [ -n "${PYTHON:-}" ]; then
  venv=.venv-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
fi
