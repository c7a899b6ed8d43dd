#!/usr/bin/env bash
# Vendors the dashboard's chart library, uPlot, from the npm registry into
# internal/dashboard/assets/vendor (embedded in the starter binary): the
# pinned version's tarball, checked against the registry's sha512 integrity,
# its minified script and stylesheet only. Run it to move to another
# version (update VERSION and INTEGRITY), then commit the files.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="1.6.32"
INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
OUT="$ROOT/internal/dashboard/assets/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -sfL "https://registry.npmjs.org/uplot/-/uplot-$VERSION.tgz" -o "$tmp/uplot.tgz"
got="sha512-$(openssl dgst -sha512 -binary "$tmp/uplot.tgz" | base64 -w0)"
if [[ "$got" != "$INTEGRITY" ]]; then
	echo "uplot $VERSION: integrity $got, want $INTEGRITY" >&2
	exit 1
fi
tar -xzf "$tmp/uplot.tgz" -C "$tmp" package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE
mkdir -p "$OUT"
cp "$tmp/package/dist/uPlot.iife.min.js" "$tmp/package/dist/uPlot.min.css" "$OUT/"
cp "$tmp/package/LICENSE" "$OUT/uPlot.LICENSE"
(cd "$OUT" && sha256sum uPlot.iife.min.js uPlot.min.css uPlot.LICENSE >SHA256SUMS)
printf 'uplot %s from the npm registry (%s)\n' "$VERSION" "$INTEGRITY" >"$OUT/VERSION"
echo "vendored uplot $VERSION into $OUT"
