#!/usr/bin/env bash
# Installs the Debian packages a step needs (build, test or bench) when they are missing.
# As root it runs apt-get; otherwise it prints the command to run and fails.
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config libh2o-dev libjansson-dev libuv1-dev
            libsodium-dev libcurl4-openssl-dev libsqlite3-dev uuid-dev libinih-dev libjwt-dev
            libssl-dev libwslay-dev libspandsp-dev libosip2-dev flite1-dev libsndfile1-dev
            libsamplerate0-dev libspeexdsp-dev libopus-dev libsrtp2-dev libfftw3-dev libpocketsphinx-dev libsphinxbase-dev pocketsphinx-en-us)
test_pkgs=(libcmocka-dev libmicrohttpd-dev python3 python3-pytest python3-websocket clang libclang-rt-14-dev curl
           baresip-core sip-tester sox flite pocketsphinx chromium python3-aiortc)
bench_pkgs=(wrk)

want=("${build_pkgs[@]}")
case "${1:-build}" in
  build) ;;
  test) want+=("${test_pkgs[@]}") ;;
  bench) want+=("${bench_pkgs[@]}") ;;
  *) echo "usage: $0 build|test|bench" >&2; exit 2 ;;
esac

# The browser tests' page loads JsSIP from npm: Node.js and npm (Debian's, unless a Node.js that
# brings its own npm is there already).
if [ "${1:-build}" = test ]; then
  command -v node >/dev/null || want+=(nodejs)
  command -v npm >/dev/null || want+=(npm)
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The JsSIP bundle the browser test page loads (tests/browser: package-lock.json pins it).
if [ "${1:-build}" = test ]; then
  browser="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  if [ ! -f "$browser/dist/jssip.js" ] || [ "$browser/package-lock.json" -nt "$browser/dist/jssip.js" ]; then
    echo "building the browser tests' JsSIP bundle (npm ci)" >&2
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error >/dev/null && npm run -s build >/dev/null)
  fi
fi
