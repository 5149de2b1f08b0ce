#!/bin/sh
# Installs, from Debian, what skiff and its tests need (tmux: the tests
# drive `kubectl exec -it` through a real terminal; tzdata: CronJob
# `timeZone`s). Idempotent.
set -eu
PACKAGES="etcd-server protobuf-compiler containerd runc containernetworking-plugins busybox-static nftables iproute2 conntrack tmux tzdata"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing Debian packages:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
