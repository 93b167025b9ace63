#!/usr/bin/env bash
# `make run`: starts the server on its embedded defaults (./data, 127.0.0.1:8080) in the
# foreground. Extra arguments go to the server (make run RUN_ARGS="--http 127.0.0.1:9000").
set -euo pipefail
bin=${1:?usage: run.sh BINARY [ARGS...]}
shift
echo "starting conferenced (Ctrl-C stops it)"
exec "$bin" "$@"
