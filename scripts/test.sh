#!/usr/bin/env bash
# The whole test suite: unit, conformance, crash and end-to-end tests,
# including third-party clients (Python poplib, curl, fetchmail, openssl);
# the end-to-end tests on SQLite, then on PostgreSQL.
# Installs the clients it needs on Debian when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Every package a tool needs at run time is named: --no-install-recommends
# (below) leaves out recommended ones, e.g. swaks' Perl TLS modules (without
# them `swaks --tls` says "TLS not available: requires Net::SSLeay").
# crates/postamt/tests/common/mod.rs (TOOLS) checks the same list.
need=()
command -v curl      >/dev/null || need+=(curl)
command -v openssl   >/dev/null || need+=(openssl)
command -v fetchmail >/dev/null || need+=(fetchmail)
if ! command -v swaks >/dev/null || ! swaks --support 2>&1 | grep -q '=== TLS supported'; then
  need+=(swaks libnet-ssleay-perl libio-socket-ssl-perl)
fi
command -v python3   >/dev/null || need+=(python3)
command -v psql      >/dev/null || need+=(postgresql-client)  # the e2e tests make their PostgreSQL schemas
command -v mbsync    >/dev/null || need+=(isync)
command -v offlineimap >/dev/null || need+=(offlineimap3)
command -v fincore   >/dev/null || need+=(util-linux-extra)  # page-cache residency (store drop-behind test)
[ -x /usr/sbin/postfix ]        || need+=(postfix)
[ -x /usr/lib/dovecot/imap ]    || need+=(dovecot-imapd)
[ -x /usr/lib/dovecot/pop3 ]    || need+=(dovecot-pop3d)
[ -x /usr/lib/dovecot/lmtp ]    || need+=(dovecot-lmtpd)
[ -x /usr/sbin/opendkim-testmsg ] || need+=(opendkim-tools)  # OpenDKIM signs, postamt verifies
command -v cmsutil   >/dev/null || need+=(libnss3-tools)    # NSS (Thunderbird's engine) for S/MIME interop
command -v gpg-agent >/dev/null && command -v gpgsm >/dev/null || need+=(gpgsm gpg-agent)  # GnuPG's S/MIME
# The web interface's browser tests: Debian's Chromium and its WebDriver,
# and a font so that screenshots show text.
command -v chromedriver >/dev/null && [ -x /usr/bin/chromium ] || need+=(chromium chromium-driver fonts-dejavu-core)
# Build dependencies of the openssl crate (S/MIME): headers and pkg-config.
pkg-config --exists openssl 2>/dev/null || need+=(libssl-dev pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test clients: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  # Postfix without a system configuration: no prompt, no main.cf, so no
  # system instance starts (the test runs its own on loopback ports).
  if [[ " ${need[*]} " == *" postfix "* ]]; then
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  fi
  # No system service may start from the packages (Dovecot would take
  # ports 143/993): policy-rc.d says no for the time of the install.
  policy=/usr/sbin/policy-rc.d
  made_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$made_policy" ] || $SUDO rm -f "$policy"
fi

# Python modules for the relay tests: an authoritative DNS server (dnslib),
# the independent DKIM implementation (dkimpy, with PyNaCl for Ed25519 and
# authres for its ARC sealing).
if ! python3 -c "import dnslib, dkim, nacl, authres" 2>/dev/null; then
  echo "installing python test modules: dnslib dkimpy pynacl authres"
  python3 -m pip install -q dnslib dkimpy pynacl authres 2>&1 | grep -v "Running pip as the 'root' user" || true
  python3 -c "import dnslib, dkim, nacl, authres"
fi

# Missing clients are failures from here on, not skips.
export POSTAMT_REQUIRE_TOOLS=1
# Formatting is checked where rustfmt is installed (a minimal toolchain lacks it).
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all -- --check
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Doc-tests are skipped: the docs hold no runnable examples. Every test
# bounds its own waits; the timeout is the last guard, so a hang fails the
# run with a message instead of running until CI's limit (the suite takes
# about 5 minutes on 2 cores, the build included).
status=0
timeout -k 30 1800 cargo test --workspace --all-features --locked --lib --bins --tests 2>&1 | tee "$log" || status=$?
if [ "$status" = 124 ]; then
  echo "the test suite did not finish within 30 minutes: a test hangs (the last 'running' line above names it)"
fi
[ "$status" = 0 ] || exit "$status"
# The end-to-end tests again, on PostgreSQL (issue 18: one suite, both
# backends): every server gets a schema of its own in the machine's
# database (POSTAMT_TEST_PG, default postgres://root@127.0.0.1:5432/test).
echo "the end-to-end tests on PostgreSQL"
# (`--workspace` and the `e2e_*` targets: the binaries the first run built,
# with the same features; `-p postamt` would build them again.)
timeout -k 30 1200 env POSTAMT_TEST_STORE=postgres cargo test --workspace --all-features --locked --test 'e2e_*' 2>&1 | tee -a "$log" || status=$?
if [ "$status" = 124 ]; then
  echo "the end-to-end tests on PostgreSQL did not finish within 20 minutes: a test hangs"
fi
[ "$status" = 0 ] || exit "$status"
# One closing line for the whole suite.
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
