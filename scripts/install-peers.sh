#!/usr/bin/env bash
# Installs the SIP peers the interop tests and the benchmark drive: sipp
# (Debian package sip-tester), baresip, linphonec and openssl, and the
# browser the browser tests drive (Debian's chromium, headless, through
# browsertest; no browser is ever downloaded), and systemd-analyze, which
# verifies contrib/systemd's unit (Debian package systemd), zsh, which
# runs the zsh completion script in the cli package's tests, and
# redis-server, which the cluster tests start on a loopback port (Debian
# package redis-server; its service is not needed). Idempotent:
# a package is installed only when its command is missing. Needs root (or
# sudo) and apt-get when something is missing; fails loudly otherwise.
# With --bench it also installs Kamailio (Debian package kamailio), which
# `make bench` compares sipwarden with (bench/kamailio/kamailio.cfg).
set -euo pipefail

cmds=(sipp baresip linphonec openssl chromium systemd-analyze zsh redis-server)
if [ "${1:-}" = "--bench" ]; then
	cmds+=(kamailio)
fi
# Debian installs kamailio in /usr/sbin.
export PATH="$PATH:/usr/sbin:/sbin"

# command -> Debian package
declare -A pkg=(
	[sipp]=sip-tester
	[baresip]=baresip-core
	[linphonec]=linphone-cli
	[openssl]=openssl
	[chromium]=chromium
	[systemd-analyze]=systemd
	[zsh]=zsh
	[kamailio]=kamailio
	[redis-server]=redis-server
)

missing=()
for cmd in "${cmds[@]}"; do
	command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "install-peers: ${cmds[*]} are installed"
	exit 0
fi

echo "install-peers: installing ${missing[*]}"
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-peers: apt-get not found; install ${missing[*]} by hand" >&2
	exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		echo "install-peers: not root and no sudo; install ${missing[*]} by hand" >&2
		exit 1
	fi
fi

export DEBIAN_FRONTEND=noninteractive
apt_install() {
	timeout 900 "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}
# The package lists may be missing or stale on a fresh machine: update once
# and retry.
if ! apt_install; then
	echo "install-peers: apt-get install failed; running apt-get update and retrying"
	timeout 600 "${sudo[@]}" apt-get update || { echo "install-peers: apt-get update failed" >&2; exit 1; }
	apt_install || { echo "install-peers: apt-get install ${missing[*]} failed" >&2; exit 1; }
fi

for cmd in "${cmds[@]}"; do
	if ! command -v "$cmd" >/dev/null 2>&1; then
		echo "install-peers: $cmd still missing after installing ${pkg[$cmd]}" >&2
		exit 1
	fi
done
echo "install-peers: done"
