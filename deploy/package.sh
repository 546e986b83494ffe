#!/usr/bin/env bash
# Builds phiwatch's .deb, runs lintian on it, and installs, upgrades, removes and purges it
# in a throw-away root. Run by .ci/run; safe to run again.
#
# What is real and what is not (README, "Operations"):
# - real: cargo-deb's package (stripped binary, dbgsym, man pages, completions, conffile,
#   changelog), lintian, and dpkg itself unpacking, upgrading, removing and purging it in
#   a separate root (`dpkg --root`, its own database) and running the maintainer scripts
#   in the order and with the arguments dpkg gives them;
# - simulated: the scripts run with `--force-script-chrootless` (no chroot, $DPKG_ROOT
#   prefixes every path they touch), and adduser, getent, chown, deb-systemd-helper,
#   deb-systemd-invoke and systemctl are stubs that record their calls, so the test checks
#   which units would be enabled, started, restarted and stopped, not systemd doing it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT_DIR=$(pwd)
export PATH="$HOME/.cargo/bin:$PATH"
TARGET="${CARGO_TARGET_DIR:-$ROOT_DIR/target}"
CARGO_DEB_VERSION=3.8.0

log() { printf '\n== package: %s\n' "$*"; }
fail() { printf 'package: FAILED: %s\n' "$*" >&2; exit 1; }

export DEBIAN_FRONTEND=noninteractive
if ! command -v lintian >/dev/null; then
    log "apt-get install lintian"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends lintian
fi
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    log "cargo install cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi

log "cargo build --release"
cargo build --release --locked
# Man pages and completions, generated from the clap definition by the binary itself.
rm -rf "$ROOT_DIR/target/assets"
"$TARGET/release/phiwatch" package-assets --out "$ROOT_DIR/target/assets"

OUT="$TARGET/package"
rm -rf "$OUT"
mkdir -p "$OUT"
log "cargo deb"
cargo deb --no-build --locked --output "$OUT"
DEB=$(ls "$OUT"/phiwatch_*.deb)
ls -l "$OUT"

log "lintian"
# Errors and warnings fail the build; the overrides (deploy/debian/lintian-overrides) are
# each justified there and in README.md. The full record, overrides and info tags, first.
lintian --show-overrides --display-info "$DEB" 2>/dev/null | grep -v '^N:' | tee "$OUT/lintian.txt" || true
lintian --fail-on error,warning "$DEB" || fail "lintian reports errors or warnings"
if grep -qE '^(E|W): ' "$OUT/lintian.txt"; then fail "lintian reports errors or warnings"; fi
dpkg-deb --info "$DEB" | sed -n '1,40p'
dpkg-deb --contents "$DEB" | awk '{print $1, $3, $6}' | sed -n '1,80p'
# The binary is stripped; its symbols are in the dbgsym package.
dpkg-deb --fsys-tarfile "$DEB" | tar -xO ./usr/bin/phiwatch > "$OUT/phiwatch.bin"
if file "$OUT/phiwatch.bin" | grep -q 'not stripped'; then fail "usr/bin/phiwatch is not stripped"; fi
ls -l "$OUT/phiwatch.bin"

log "install, upgrade, remove, purge in a throw-away root"
R=$(mktemp -d /tmp/phiwatch-root.XXXXXX)
STUBS=$(mktemp -d /tmp/phiwatch-stubs.XXXXXX)
trap 'rm -rf "$R" "$STUBS"' EXIT
mkdir -p "$R/var/lib/dpkg/info" "$R/var/lib/dpkg/updates" "$R/var/lib/dpkg/triggers" \
    "$R/run/systemd/system" "$R/state"
touch "$R/var/lib/dpkg/status" "$R/var/lib/dpkg/available"
CALLS="$R/state/calls.log"
: > "$CALLS"
# Stubs: record every call; keep just enough state for the scripts' questions.
stub() { printf '#!/bin/sh\nS="%s/state"\necho "$(basename "$0") $*" >> "$S/calls.log"\n%s\n' "$R" "$2" > "$STUBS/$1"; chmod +x "$STUBS/$1"; }
stub adduser 'case "$*" in *--system*) touch "$S/user";; esac; exit 0'
stub getent 'case "$1 $2" in "passwd phiwatch") [ -e "$S/user" ];; "group adm") exit 0;; *) exit 2;; esac'
stub chown 'exit 0'
stub systemctl 'exit 0'
stub deb-systemd-invoke 'exit 0'
stub deb-systemd-helper 'cmd=$1; [ "$cmd" = "--quiet" ] && { shift; cmd=$1; }; shift
case "$cmd" in
  was-enabled) [ -e "$S/enabled-$1" ];;
  enable) touch "$S/enabled-$1";;
  purge) rm -f "$S/enabled-$1";;
  *) exit 0;;
esac'
dpkg_root() {
    PATH="$STUBS:$PATH" dpkg --root="$R" --force-script-chrootless --force-depends \
        --force-not-root --log="$R/state/dpkg.log" "$@"
}
called() { grep -qx -- "$1" "$CALLS" || { cat "$CALLS"; fail "expected call: $1"; }; }
not_called() { if grep -qx -- "$1" "$CALLS"; then cat "$CALLS"; fail "unexpected call: $1"; fi; }

# 1. First install: files in place, account and folders made, units known but not
#    started (the packaged config has no source, so `phiwatch check` fails).
dpkg_root -i "$DEB"
for f in usr/bin/phiwatch lib/systemd/system/phiwatch.service etc/phiwatch/phiwatch.toml \
    usr/share/man/man1/phiwatch.1.gz usr/share/bash-completion/completions/phiwatch \
    usr/share/doc/phiwatch/changelog.Debian.gz usr/share/doc/phiwatch/copyright; do
    [ -e "$R/$f" ] || fail "not installed: /$f"
done
[ "$(stat -c %a "$R/var/log/phiwatch")" = 750 ] || fail "/var/log/phiwatch is not 0750"
[ "$(stat -c %a "$R/var/lib/phiwatch")" = 750 ] || fail "/var/lib/phiwatch is not 0750"
[ "$(stat -c %a "$R/etc/phiwatch/phiwatch.toml")" = 640 ] || fail "the config is not 0640"
called "adduser --system --group --home /var/lib/phiwatch --no-create-home --gecos phiwatch insider-leak detection phiwatch"
called "deb-systemd-helper update-state phiwatch.service"
not_called "deb-systemd-helper enable phiwatch.service"
not_called "deb-systemd-invoke start phiwatch.service"
echo "install: ok"

# The admin configures and enables the daemon; it writes state and alerts.
touch "$R/state/enabled-phiwatch.service"
echo '{"id":"a1"}' > "$R/var/log/phiwatch/alerts.ndjson"
echo 'archived' | gzip > "$R/var/log/phiwatch/alerts-2026-11-29.ndjson.gz"
echo '{}' > "$R/var/lib/phiwatch/run.snapshot.json"

# 2. Upgrade to a newer version of the same package: enabled state kept, the running
#    daemon restarted.
NEXT="$OUT/next"
dpkg-deb -R "$DEB" "$NEXT"
sed -i -E 's/^Version: (.*)$/Version: \1+next1/' "$NEXT/DEBIAN/control"
dpkg-deb -b --root-owner-group "$NEXT" "$OUT/phiwatch_next.deb" >/dev/null
: > "$CALLS"
dpkg_root -i "$OUT/phiwatch_next.deb"
called "deb-systemd-helper enable phiwatch.service"
called "deb-systemd-invoke try-restart phiwatch.service phiwatch-agent.service phiwatch-engine.service"
not_called "deb-systemd-invoke stop phiwatch.service phiwatch-agent.service phiwatch-engine.service"
grep -q '+next1' "$R/var/lib/dpkg/status" || fail "the upgrade is not recorded"
echo "upgrade: ok (daemon restarted)"

# 3. Remove: units stopped and masked, binary gone, config and alert archive kept.
: > "$CALLS"
dpkg_root -r phiwatch
called "deb-systemd-invoke stop phiwatch.service phiwatch-agent.service phiwatch-engine.service"
called "deb-systemd-helper mask phiwatch.service"
[ ! -e "$R/usr/bin/phiwatch" ] || fail "remove left the binary"
[ -e "$R/etc/phiwatch/phiwatch.toml" ] || fail "remove deleted the conffile"
[ -e "$R/var/log/phiwatch/alerts.ndjson" ] || fail "remove deleted the alert archive"
echo "remove: ok"

# 4. Purge: config and state gone, alert archive kept.
: > "$CALLS"
dpkg_root -P phiwatch
called "deb-systemd-helper purge phiwatch.service"
[ ! -e "$R/etc/phiwatch/phiwatch.toml" ] || fail "purge kept the conffile"
[ ! -e "$R/var/lib/phiwatch" ] || fail "purge kept the state"
[ -e "$R/var/log/phiwatch/alerts.ndjson" ] || fail "purge deleted the alert archive"
[ -e "$R/var/log/phiwatch/alerts-2026-11-29.ndjson.gz" ] || fail "purge deleted the archived alerts"
echo "purge: ok (alert archive kept)"
log "package: all checks passed ($DEB)"
