# procs.sh: helpers shared by the load scripts (tools, starting and
# stopping processes; ws_scale.sh, pgo.sh, compare.sh). Source it.

# missing_tools TOOL:PACKAGE...: the Debian packages of the tools not on
# PATH, one per line.
missing_tools() {
  local t
  for t in "$@"; do command -v "${t%%:*}" >/dev/null 2>&1 || echo "${t#*:}"; done
}

# debian_install WHO PACKAGE...: apt-get install them (nothing when none);
# WHO names the script in its message. As root, on a fresh machine too.
debian_install() {
  local who=$1
  shift
  [ $# -gt 0 ] || return 0
  echo "$who: installing $* from Debian" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# wait_port PORT PID [TRIES]: until something listens on 127.0.0.1:PORT
# (TRIES × 50 ms, default 200 = 10 s); fails at once if PID exits first.
wait_port() {
  local i
  for ((i = 0; i < ${3:-200}; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# stop_pids SECONDS PID...: SIGTERM to all, up to SECONDS for each to exit
# (a draining clawgate writes its logs, or its profile, on the way out),
# then SIGKILL to any still running.
stop_pids() {
  local secs=$1 p i
  shift
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for ((i = 0; i < secs * 20; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null || true
  done
}
