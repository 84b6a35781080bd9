#!/usr/bin/env bash
# Make sure a Docker Engine answers: do nothing if one does; on Debian as root install Debian's
# docker.io and start dockerd in the background; otherwise say exactly what the user must do.
set -euo pipefail

LOG=${TOOLKIT_DOCKERD_LOG:-/var/log/toolkit-dockerd.log}
WAIT_S=${TOOLKIT_ENGINE_WAIT_S:-60}

answers() { command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; }

if answers; then
  echo "engine: Docker Engine $(docker version --format '{{.Server.Version}}') is running"
  exit 0
fi

if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  cat >&2 <<'MSG'
engine: no Docker Engine answers.
  Start one, then run this again:
    - Linux:   sudo systemctl start docker   (install: https://docs.docker.com/engine/install/)
    - macOS / Windows: start Docker Desktop
  If the engine runs elsewhere, set DOCKER_HOST (e.g. unix:///run/user/1000/docker.sock).
MSG
  exit 1
fi

need=()
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  echo "engine: installing ${need[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "engine: starting dockerd (log: $LOG)"
  mkdir -p "$(dirname "$LOG")"
  nohup dockerd >>"$LOG" 2>&1 &
fi

for _ in $(seq 1 "$WAIT_S"); do
  if docker info >/dev/null 2>&1; then
    echo "engine: Docker Engine $(docker version --format '{{.Server.Version}}') is running"
    exit 0
  fi
  sleep 1
done
echo "engine: dockerd did not answer within ${WAIT_S}s; last lines of $LOG:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
