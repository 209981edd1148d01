#!/usr/bin/env bash
# Make sure Debian's nginx is installed (the local cluster's balancers, and `make test`'s);
# `ensure-nginx.sh stream` also its TCP module, libnginx-mod-stream (`make run-ha`'s AMQP balancer).
# The cluster runs nginx as a plain process with a configuration of its own
# (local_cluster/nginx.py); the system's nginx service is never started here.
set -euo pipefail

packages=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || packages+=(nginx)
if [ "${1:-}" = stream ] && [ ! -e /usr/lib/nginx/modules/ngx_stream_module.so ]; then
  packages+=(libnginx-mod-stream)
fi
[ ${#packages[@]} -eq 0 ] && exit 0

echo "ensure-nginx: installing Debian's ${packages[*]}"
# The package's post-install step would start the system service on port 80: forbid it for the
# install (invoke-rc.d asks policy-rc.d) unless a policy is in place already.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod +x "$policy"
  made_policy=1
fi
cleanup() { [ -n "$made_policy" ] && rm -f "$policy"; return 0; }
trap cleanup EXIT
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
