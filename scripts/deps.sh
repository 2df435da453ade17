#!/bin/sh
# Installs the real peers the interoperability tests talk to, when missing:
# lldpd, tshark, yanglint and the IETF YANG modules it checks against,
# nftables, iproute2, tmux, FRR. Needs root for apt-get;
# without root it names what is missing and fails.
set -eu

need=""
have() { command -v "$1" >/dev/null 2>&1; }
have lldpd    || need="$need lldpd"
have tshark   || need="$need tshark"
have yanglint || need="$need libyang-tools"
# ietf-interfaces (RFC 8343) and iana-if-type for the yanglint tests.
[ -f /usr/share/yuma/nmda-modules/ietf/ietf-interfaces@2018-02-20.yang ] || need="$need libyuma-base"
have nft      || need="$need nftables"
have ip       || need="$need iproute2"
have tmux     || need="$need tmux"
have vtysh    || need="$need frr"
have ping     || need="$need iputils-ping"

if [ -n "$need" ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing Debian packages:$need" >&2
		echo "deps: run as root, or: apt-get install -y$need" >&2
		exit 1
	fi
	echo "deps: installing$need"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >/dev/null
	# tshark asks whether non-root users may capture; the default (no) is fine.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# npm packages, project-local in .cache/npm (git-ignored): the MCP
# inspector's CLI mode is an MCP client nobody here wrote, used by the
# d2d mcp interoperability test.
npmdir=.cache/npm
if [ ! -x "$npmdir/node_modules/.bin/mcp-inspector" ]; then
	if ! have npm; then
		echo "deps: npm missing: apt-get install -y nodejs npm" >&2
		exit 1
	fi
	echo "deps: installing @modelcontextprotocol/inspector into $npmdir"
	mkdir -p "$npmdir"
	[ -f "$npmdir/package.json" ] || echo '{"private":true}' >"$npmdir/package.json"
	npm install --prefix "$npmdir" --no-audit --no-fund --loglevel=error @modelcontextprotocol/inspector@2.12.0 >/dev/null
fi
