#!/usr/bin/env bash
# Installs the Debian packages tessera builds against (libhdf5 for HDF5 export), nginx (the
# load balancer of loadtest/cluster.sh), Node.js (the OpenID provider of the login tests),
# Prometheus with promtool (the monitoring tests) and docker-compose (it validates the compose
# file; no Docker engine is needed), if missing.
set -euo pipefail
missing=()
for pkg in libhdf5-dev pkg-config nginx-light prometheus docker-compose; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >&2
fi
