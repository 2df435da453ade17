#!/bin/sh
# Fails when go.mod or go.sum are not tidy, without changing them.
set -eu
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp go.mod go.sum "$tmp"/
go mod tidy
if ! cmp -s go.mod "$tmp/go.mod" || ! cmp -s go.sum "$tmp/go.sum"; then
	diff -u "$tmp/go.mod" go.mod || true
	cp "$tmp/go.mod" "$tmp/go.sum" .
	echo "go.mod/go.sum are not tidy: run 'go mod tidy'" >&2
	exit 1
fi
