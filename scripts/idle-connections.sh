#!/usr/bin/env bash
# Opens N idle TCP connections (default 20,000) against a release `byollm serve`
# on loopback and prints the server's open descriptors (/proc/PID/fd) and RSS
# before, during and after, and whether /healthz answers meanwhile (issue 10).
# Stops by itself: every wait is bounded and everything it started is killed.
#
#   scripts/idle-connections.sh            # builds the release binary first
#   BYOLLM_BIN=path/to/byollm N=20000 MAX_CONNECTIONS=5000 scripts/idle-connections.sh
set -euo pipefail

N="${N:-20000}"
CLIENTS="${CLIENTS:-4}"       # client processes, N/CLIENTS sockets each
HOLD="${HOLD:-45}"            # seconds each client keeps its sockets
PORT="${PORT:-18089}"
HEADER_TIMEOUT="${HEADER_TIMEOUT:-10}"
MAX_CONNECTIONS="${MAX_CONNECTIONS:-}"   # empty: the server's default

# Each connection is a descriptor on both ends: raise the soft limit to the hard.
ulimit -n "$(ulimit -Hn)"

root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "${BYOLLM_BIN:-}" ]]; then
  cargo build --release -p byollm --manifest-path "$root/Cargo.toml"
  BYOLLM_BIN="${CARGO_TARGET_DIR:-$root/target}/release/byollm"
fi

work="$(mktemp -d)"
server_pid=""
client_pids=()
cleanup() {
  for p in "${client_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [[ -n "$server_pid" ]]; then kill "$server_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/byollm.toml" <<TOML
version = 1
[server]
header_read_timeout_seconds = $HEADER_TIMEOUT
TOML
if [[ -n "$MAX_CONNECTIONS" ]]; then
  echo "max_connections = $MAX_CONNECTIONS" >>"$work/byollm.toml"
fi

"$BYOLLM_BIN" serve --config "$work/byollm.toml" --listen "127.0.0.1:$PORT" \
  --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!

url="http://127.0.0.1:$PORT/healthz"
for _ in $(seq 1 100); do
  curl -fsS -m 1 "$url" >/dev/null 2>&1 && break
  sleep 0.2
done

stats() {
  local fds rss
  fds=$(find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 | wc -l)
  rss=$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$server_pid/status")
  echo "$1: server fds=$fds rss=$rss"
}

healthz() {
  local t0 t1 code
  t0=$(date +%s.%N)
  code=$(curl -s -o /dev/null -w '%{http_code}' -m 30 "$url" || true)
  t1=$(date +%s.%N)
  echo "$1: /healthz -> ${code:-none} in $(echo "$t1 - $t0" | bc) s"
}

stats "before"
healthz "before"

cat >"$work/client.py" <<'PY'
import socket, sys, time
n, hold, port = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    except OSError:
        continue
    socks.append(s)
time.sleep(hold)
closed = 0
for s in socks:
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(f"client: opened {len(socks)}, closed by the server {closed}", flush=True)
PY

per=$(( N / CLIENTS ))
for _ in $(seq 1 "$CLIENTS"); do
  timeout $(( HOLD + 30 )) python3 "$work/client.py" "$per" "$HOLD" "$PORT" &
  client_pids+=($!)
done
sleep 5
stats "with $N idle connections opened"
healthz "with $N idle connections opened"
sleep $(( HOLD - 10 ))
stats "after the header-read timeout (${HEADER_TIMEOUT} s)"
healthz "after"
for p in "${client_pids[@]}"; do wait "$p" || true; done
client_pids=()
stats "after the clients left"
if grep -qi "too many open files" "$work/server.log"; then
  echo "server log mentions EMFILE:"; grep -i "too many open files" "$work/server.log" | head -3
fi
