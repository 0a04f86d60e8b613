#!/bin/sh
# A private Postfix instance for the end-to-end tests: its own config,
# queue and data directories under DIR, listening on 127.0.0.1 only, no
# chroot, no DNS (smtp_dns_support_level, not the deprecated
# disable_dns_lookups; host names come from /etc/hosts), logging to DIR/maillog. Must run as root (Postfix's
# master starts as root and drops to the `postfix` user).
#
# usage:
#   postfix_instance.sh create DIR SMTPD_PORT TRANSPORT [DOMAIN]
#       writes DIR/etc/{main,master}.cf; mail for DOMAIN (default
#       example.test) goes to TRANSPORT (e.g. smtp:[127.0.0.1]:2525 or
#       lmtp:inet:127.0.0.1:2424), everything else (bounces to remote
#       senders, postmaster notices) is discarded.
#       With POSTFIX_DEFAULTS=1, the settings that make the tests quick
#       (retry timers, host lookups, TLS, connection caching) are left at
#       Postfix's defaults.
#   postfix_instance.sh route DIR TRANSPORT   changes where DOMAIN goes
#   postfix_instance.sh start DIR             checks the config and starts
#   postfix_instance.sh stop DIR              stops, waits, kills leftovers
#
# Nothing outside DIR is written; only processes of this instance's
# master (its process group, read from DIR/queue/pid/master.pid) are
# signalled.
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

cmd=${1:?usage: postfix_instance.sh create|route|start|stop DIR ...}
dir=${2:?DIR missing}
etc=$dir/etc

route() {
    domain=$(postconf -c "$etc" -h relay_domains)
    postconf -c "$etc" -e "transport_maps = inline:{ $domain=$1 }"
}

master_pid() {
    pidfile=$dir/queue/pid/master.pid
    [ -r "$pidfile" ] || return 1
    pid=$(tr -dc 0-9 <"$pidfile")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

case $cmd in
create)
    port=${3:?SMTPD_PORT missing}
    transport=${4:?TRANSPORT missing}
    domain=${5:-example.test}
    # Postfix insists that its queue directory and the path to it are
    # owned by root and not writable by others.
    mkdir -p "$etc" "$dir/queue" "$dir/data"
    chmod 755 "$dir" "$etc" "$dir/queue"
    chown postfix "$dir/data"
    cat >"$etc/main.cf" <<EOF
compatibility_level = 3.6
config_directory = $etc
queue_directory = $dir/queue
data_directory = $dir/data
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
myhostname = relay.test
mydomain = relay.test
myorigin = relay.test
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
relay_domains = $domain
relay_recipient_maps =
default_transport = discard:test instance delivers nowhere else
relay_transport = error:$domain has no route
biff = no
append_dot_mydomain = no
smtp_dns_support_level = disabled
EOF
    # What the tests need to be quick and deterministic; the SMTP benchmark
    # (bench/smtp_vs_postfix.sh) compares against Postfix's defaults and
    # leaves it out (POSTFIX_DEFAULTS=1).
    [ "${POSTFIX_DEFAULTS:-}" = 1 ] || cat >>"$etc/main.cf" <<EOF
smtp_host_lookup = native
lmtp_host_lookup = native
smtpd_peername_lookup = no
smtp_tls_security_level = may
smtp_tls_loglevel = 1
lmtp_tls_security_level = none
smtp_connection_cache_on_demand = no
lmtp_connection_cache_on_demand = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
EOF
    cat >"$etc/master.cf" <<EOF
# service          type  private unpriv chroot wakeup maxproc command
127.0.0.1:$port    inet  n       -      n      -      -       smtpd
pickup             unix  n       -      n      60     1       pickup
cleanup            unix  n       -      n      -      0       cleanup
qmgr               unix  n       -      n      300    1       qmgr
tlsmgr             unix  -       -      n      1000?  1       tlsmgr
rewrite            unix  -       -      n      -      -       trivial-rewrite
bounce             unix  -       -      n      -      0       bounce
defer              unix  -       -      n      -      0       bounce
trace              unix  -       -      n      -      0       bounce
verify             unix  -       -      n      -      1       verify
flush              unix  n       -      n      1000?  0       flush
proxymap           unix  -       -      n      -      -       proxymap
proxywrite         unix  -       -      n      -      1       proxymap
smtp               unix  -       -      n      -      -       smtp
relay              unix  -       -      n      -      -       smtp
showq              unix  n       -      n      -      -       showq
error              unix  -       -      n      -      -       error
retry              unix  -       -      n      -      -       error
discard            unix  -       -      n      -      -       discard
lmtp               unix  -       -      n      -      -       lmtp
anvil              unix  -       -      n      -      1       anvil
scache             unix  -       -      n      -      1       scache
postlog            unix-dgram n  -      n      -      1       postlogd
EOF
    route "$transport"
    ;;
route)
    route "${3:?TRANSPORT missing}"
    ;;
start)
    postfix -c "$etc" check
    postfix -c "$etc" start
    # Ready when the master has written its pid and smtpd's port answers
    # (the master binds it before it forks anything).
    i=0
    until master_pid >/dev/null; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "postfix master did not start" >&2; exit 1; }
        sleep 0.1
    done
    ;;
stop)
    pid=$(master_pid) || exit 0
    postfix -c "$etc" stop >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -ge 100 ]; then
            echo "postfix master $pid did not stop; killing its process group" >&2
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    # Children exit once the master is gone; make sure none linger (the
    # master leads its own process group).
    i=0
    while kill -0 -- "-$pid" 2>/dev/null; do
        i=$((i + 1))
        if [ $i -ge 50 ]; then
            kill -KILL -- "-$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    ;;
*)
    echo "unknown command: $cmd" >&2
    exit 2
    ;;
esac
