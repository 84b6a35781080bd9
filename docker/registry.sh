#!/usr/bin/env bash
# A throwaway local registry on 127.0.0.1 for the push/pull tests: if one answers, reuse it;
# on Debian as root install Debian's docker-registry and start it; otherwise exit 1.
set -euo pipefail

PORT=${TOOLKIT_REGISTRY_PORT:-5000}
DIR=${TOOLKIT_REGISTRY_DIR:-/var/lib/toolkit-registry}
URL="http://127.0.0.1:${PORT}/v2/"

answers() { python3 -c "import urllib.request,sys; urllib.request.urlopen('$URL', timeout=2)" 2>/dev/null; }

if answers; then exit 0; fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  echo "registry: none on 127.0.0.1:${PORT}; start one (e.g. docker-registry) to run push/pull tests" >&2
  exit 1
fi
if ! command -v docker-registry >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends docker-registry >/dev/null
  # the package starts a service on :5000 where an init system runs; we start our own below
fi
mkdir -p "$DIR"
cat > "$DIR/config.yml" <<CFG
version: 0.1
storage: {filesystem: {rootdirectory: $DIR/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:${PORT}}
log: {level: warn}
CFG
nohup docker-registry serve "$DIR/config.yml" >>"$DIR/registry.log" 2>&1 &
for _ in $(seq 1 30); do
  if answers; then echo "registry: listening on 127.0.0.1:${PORT}"; exit 0; fi
  sleep 1
done
echo "registry: did not start; see $DIR/registry.log" >&2
exit 1
