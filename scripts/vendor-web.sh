#!/usr/bin/env bash
# Re-vendors the web app's third-party code from the npm registry: for each
# package in web/thirdparty/PACKAGES it fetches the published tarball
# (npm pack), checks it against the integrity hash written there, unpacks
# it, and lets the bundle tool keep the files the bundle uses, unchanged,
# with SHA256SUMS and a new web/app/vendor/vendor.js.
#
# To update a package: change its version and integrity in PACKAGES
# (npm view NAME@VERSION dist.integrity), run this, read the diff.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mods="$tmp/node_modules"
mkdir -p "$mods"
grep -v '^#' web/thirdparty/PACKAGES | while read -r name version integrity; do
	[ -n "$name" ] || continue
	(cd "$tmp" && npm pack --silent "$name@$version" >/dev/null)
	tgz="$tmp/$(echo "$name" | sed 's/^@//; s/\//-/')-$version.tgz"
	got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
	if [ "$got" != "$integrity" ]; then
		echo "vendor-web: $name@$version: tarball hash $got, PACKAGES says $integrity" >&2
		exit 1
	fi
	mkdir -p "$mods/$name"
	tar -xzf "$tgz" -C "$mods/$name" --strip-components=1
	echo "vendor-web: $name@$version ok"
done
cd web/thirdparty/bundle
go run . -root "$repo" -from "$mods"
echo "vendor-web: wrote web/thirdparty and web/app/vendor/vendor.js"
