#!/usr/bin/env bash
# Installs the Debian packages a step needs (build, test or bench) when they are missing.
# As root it runs apt-get; otherwise it prints the command to run and fails.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libh2o-dev libjansson-dev libuv1-dev
            libsodium-dev libcurl4-openssl-dev libsqlite3-dev uuid-dev libinih-dev libjwt-dev
            libssl-dev libwslay-dev libspandsp-dev libosip2-dev flite1-dev libsndfile1-dev
            libsamplerate0-dev libspeexdsp-dev libopus-dev libsrtp2-dev libfftw3-dev libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us)
test_pkgs=(libcmocka-dev libmicrohttpd-dev python3 python3-pytest python3-websocket clang libclang-rt-14-dev curl
           baresip-core sip-tester sox pocketsphinx)
bench_pkgs=(wrk)

want=("${build_pkgs[@]}")
case "${1:-build}" in
  build) ;;
  test) want+=("${test_pkgs[@]}") ;;
  bench) want+=("${bench_pkgs[@]}") ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
