#!/bin/sh
# Installs GridMon from this unpacked release archive (Tools/release made it).
#
#   sudo ./install.sh --server                 # the stream server
#   sudo ./install.sh --agent --server-address HOST:PORT --token TOKEN
#   sudo ./install.sh --server --agent         # both on one machine (the agent gets a token)
#
# Creates system users gridmon / gridmon-agent, copies the binaries to /usr/local/bin, the
# units to /etc/systemd/system and, when absent, the example settings to /etc/gridmon (an
# existing file is never overwritten: upgrades keep your settings). With systemd running it
# enables and starts the units. No Swift toolchain is needed: the binaries carry Swift's
# runtime (see LIBRARIES for the system libraries they use).
# Exit codes: 0 installed, 1 a step failed, 64 bad arguments.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
server=0 agent=0 address="" token="${GRIDMON_TOKEN:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --server) server=1 ;;
    --agent) agent=1 ;;
    --server-address) address="$2"; shift ;;
    --token) token="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 64 ;;
  esac
  shift
done
[ $server -eq 1 ] || [ $agent -eq 1 ] || { echo "install.sh: say --server, --agent or both" >&2; exit 64; }
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (users, /etc, /usr/local/bin)" >&2; exit 1; }

say() { echo "install.sh: $*"; }
user() {  # a system user with its own group, no shell, no home
  id -u "$1" >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$1"
}
put() {  # put SRC DEST MODE OWNER:GROUP, keeping an existing DEST
  if [ -e "$2" ]; then say "kept $2"; return; fi
  install -m "$3" -o "${4%:*}" -g "${4#*:}" "$1" "$2"; say "wrote $2"
}

install -d -m 0755 /etc/gridmon /usr/local/bin /etc/systemd/system
if [ $server -eq 1 ]; then
  user gridmon
  install -m 0755 "$here/bin/gridmon-stream-server" "$here/bin/gridmon-train" /usr/local/bin/
  install -m 0644 "$here/systemd/gridmon-server.service" /etc/systemd/system/
  put "$here/etc/server.toml" /etc/gridmon/server.toml 0640 root:gridmon
  if [ ! -e /etc/gridmon/tokens ]; then
    generated=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
    { cat "$here/etc/tokens.example"; echo "$generated default"; } > /etc/gridmon/tokens.new
    chown root:gridmon /etc/gridmon/tokens.new && chmod 0640 /etc/gridmon/tokens.new && mv /etc/gridmon/tokens.new /etc/gridmon/tokens
    say "wrote /etc/gridmon/tokens with one token for tenant 'default'"
    [ -n "$token" ] || token="$generated"
  fi
  /usr/local/bin/gridmon-stream-server config check /etc/gridmon/server.toml
fi
if [ $agent -eq 1 ]; then
  user gridmon-agent
  install -m 0755 "$here/bin/gridmon-agent" /usr/local/bin/
  install -m 0644 "$here/systemd/gridmon-agent.service" /etc/systemd/system/
  put "$here/etc/agent.toml" /etc/gridmon/agent.toml 0644 root:root
  if [ -n "$address" ]; then sed -i "s|^server = .*|server = [\"$address\"]|" /etc/gridmon/agent.toml; fi
  if [ ! -e /etc/gridmon/agent.token ]; then
    [ -n "$token" ] || { echo "install.sh: the agent needs --token TOKEN (a line of the server's /etc/gridmon/tokens)" >&2; exit 64; }
    umask 077; echo "$token" > /etc/gridmon/agent.token; chown gridmon-agent:gridmon-agent /etc/gridmon/agent.token
    say "wrote /etc/gridmon/agent.token"
  fi
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  [ $server -eq 1 ] && systemctl enable --now gridmon-server.service
  [ $agent -eq 1 ] && systemctl enable --now gridmon-agent.service
  say "started; logs: journalctl -u gridmon-server -u gridmon-agent -f"
else
  say "systemd is not running here; start the ExecStart= lines of the units by hand"
fi
