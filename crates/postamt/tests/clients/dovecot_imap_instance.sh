#!/bin/sh
# A private Dovecot IMAP server for the end-to-end tests (the oracle for
# FETCH responses): its own config, state and maildirs under DIR, listening
# on 127.0.0.1:PORT only, one user `alice` with password `alice`. Must run as
# root (Dovecot's master drops privileges; mail is stored as nobody).
#
# usage:
#   dovecot_imap_instance.sh start DIR PORT [POP3_PORT LMTP_PORT]
#       with the two extra ports it serves POP3 and LMTP too, and has the
#       special-use mailboxes Sent and Archive, and Entwürfe (a name that
#       travels in modified UTF-7), for the mail client test
#   dovecot_imap_instance.sh stop DIR
#
# Nothing outside DIR is written; only this instance's master (from
# DIR/run/master.pid) is signalled. The system-wide Dovecot is not touched.
set -eu
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
export PATH

cmd=${1:?usage: dovecot_imap_instance.sh start|stop DIR [PORT]}
dir=${2:?DIR missing}

master_pid() {
    [ -r "$dir/run/master.pid" ] || return 1
    pid=$(tr -dc 0-9 <"$dir/run/master.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

case $cmd in
start)
    port=${3:?PORT missing}
    pop3_port=${4:-}
    lmtp_port=${5:-}
    protocols=imap
    extra=""
    if [ -n "$pop3_port" ] && [ -n "$lmtp_port" ]; then
        protocols="imap pop3 lmtp"
        extra="
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $pop3_port
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp_port
  }
}
pop3_uidl_format = %08Xu%08Xv
namespace inbox {
  inbox = yes
  mailbox Sent {
    auto = create
    special_use = \\Sent
  }
  mailbox Archive {
    auto = create
    special_use = \\Archive
  }
  mailbox Entwürfe {
    auto = create
  }
}
"
    fi
    mkdir -p "$dir/run" "$dir/state" "$dir/mail"
    chmod 755 "$dir"
    chown nobody:nogroup "$dir/mail"
    echo 'alice:{PLAIN}alice' >"$dir/passwd"
    cat >"$dir/dovecot.conf" <<CONF
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
instance_name = postamt-test-$$
protocols = $protocols
listen = 127.0.0.1
# LMTP recipients are full addresses; logins and homes use the local part.
auth_username_format = %Ln
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$dir/mail/%u
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 0
default_internal_user = dovecot
default_login_user = dovenull
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $dir/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$dir/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
$extra
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
CONF
    # The daemon must not keep the caller's stdout/stderr pipes open (a
    # caller reading them to the end would wait for Dovecot to exit).
    dovecot -c "$dir/dovecot.conf" </dev/null >"$dir/start.log" 2>&1 || {
        cat "$dir/start.log" >&2
        exit 1
    }
    ;;
stop)
    pid=$(master_pid) || exit 0
    kill -TERM "$pid" 2>/dev/null || true
    i=0
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    ;;
*)
    echo "unknown command $cmd" >&2
    exit 64
    ;;
esac
