#!/usr/bin/env bash
# A throwaway single-node Kubernetes control plane (etcd + kube-apiserver) on loopback, for
# admission tests: no kubelet, scheduler or controller-manager is needed to exercise a webhook.
#
#   scripts/control-plane.sh start DIR   # prints DIR/kubeconfig once /readyz answers
#   scripts/control-plane.sh stop DIR    # idempotent
#   scripts/control-plane.sh stop-apiserver DIR    # the apiserver only (etcd keeps the data)
#   scripts/control-plane.sh start-apiserver DIR   # it again, on the same port, once /readyz answers
#
# With CONTROL_PLANE_OWNER=PID in the environment, start also leaves a watcher that runs
# `stop DIR` once that process has exited: a test passes its own PID, so the control plane
# goes away with the test binary even when the binary is killed before its cleanup runs.
# DIR holds pki/, etcd/ (data), kubeconfig, etcd.log, apiserver.log and *.pid.
# Each start is a fresh cluster: DIR/etcd and DIR/pki are recreated.
#
# Ports: etcd and kube-apiserver cannot bind port 0, so their ports are picked below the kernel's
# ephemeral range (where no outgoing connection ever takes a local port), never the same one
# twice in a run. Another process may still bind one first: a start whose log says "address
# already in use" is retried on new ports, BIND_ATTEMPTS times at most.
set -euo pipefail

die() { echo "control-plane.sh: $*" >&2; exit 1; }
if (($# != 2)) || [[ ! $1 =~ ^(start|stop|stop-apiserver|start-apiserver)$ ]]; then
  die "usage: $0 start|stop|stop-apiserver|start-apiserver DIR"
fi
mkdir -p "$2"
DIR=$(cd "$2" && pwd)

# alive NAME: the process in DIR/NAME.pid is running and is still ours (guards against PID reuse).
# Its command line reads empty for a moment while it execs (nohup becoming the binary, which on
# a loaded machine takes long enough to be seen: a just-started apiserver was once taken for
# dead, with an empty log) and for good once it is a zombie: an empty one is read again, a
# bounded number of times, before the process counts as gone.
alive() {
  local pid cmdline i
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
  for ((i = 0; i < 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1 # 2> first, to cover the <
    [[ -n $cmdline ]] && break
    sleep 0.1
  done
  [[ $cmdline == *"$DIR"* ]]
}

# stop_one NAME: TERM the process in DIR/NAME.pid if it is ours, KILL it after 10 s.
stop_one() {
  local pid i
  if alive "$1"; then
    pid=$(cat "$DIR/$1.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do # 10 s grace, then KILL
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$DIR/$1.pid"
}

stop() {
  # The watcher (unless this is the watcher itself, which execs `stop` when its owner is gone).
  if alive watch && [[ $(cat "$DIR/watch.pid") != "$$" ]]; then kill -TERM "$(cat "$DIR/watch.pid")" 2>/dev/null || true; fi
  rm -f "$DIR/watch.pid"
  stop_one apiserver
  stop_one etcd
}

BIND_ATTEMPTS=5
PORT_MIN=10000 # below: well-known services
USED_PORTS=" "

# free_port VAR: sets VAR to a random loopback port from PORT_MIN up to the ephemeral range's
# first port, not handed out before in this run, that nobody listens on (bounded number of
# tries). A variable, not $(...): the record of handed-out ports must outlive the call.
free_port() {
  local low p i
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range || low=32768
  ((low > PORT_MIN + 1000)) || die "the ephemeral range starts at $low: no room for ports from $PORT_MIN below it"
  for ((i = 0; i < 50; i++)); do
    p=$((PORT_MIN + (RANDOM * 32768 + RANDOM) % (low - PORT_MIN)))
    [[ $USED_PORTS == *" $p "* ]] && continue
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null && continue
    USED_PORTS+="$p "
    printf -v "$1" %s "$p"
    return
  done
  die "no free port found on 127.0.0.1 below $low after $i tries"
}

# wait_for NAME SECONDS CMD...: poll CMD until it succeeds, for at most SECONDS; give up early
# if NAME died. Returns 1 when it is not ready.
wait_for() {
  local name=$1 deadline=$((SECONDS + $2))
  shift 2
  while ((SECONDS < deadline)); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$name" || break
    sleep 0.5
  done
  return 1
}

# bind_failed NAME: NAME's log says one of its ports was taken.
bind_failed() { grep -qi "address already in use" "$DIR/$1.log"; }

# not_ready NAME: show NAME's log, stop everything, fail.
not_ready() {
  echo "control-plane.sh: $1 not ready; last lines of $DIR/$1.log:" >&2
  tail -n 30 "$DIR/$1.log" >&2
  stop
  exit 1
}

# retry_or_fail NAME ATTEMPT: after NAME did not become ready, return (to try again on new
# ports) when its ports were taken and attempts are left; otherwise fail.
retry_or_fail() {
  if bind_failed "$1" && (($2 < BIND_ATTEMPTS)); then
    echo "control-plane.sh: $1: a port was taken (attempt $2 of $BIND_ATTEMPTS); new ports" >&2
    cp "$DIR/$1.log" "$DIR/$1.attempt-$2.log"
    stop_one "$1"
    return 0
  fi
  not_ready "$1"
}

# start_apiserver: runs the apiserver of DIR/apiserver.args (one argument per line) and waits
# for its /readyz (DIR/apiserver.probe: its URL and token). Returns 1 when it is not ready.
start_apiserver() {
  local args url token
  mapfile -t args <"$DIR/apiserver.args"
  { read -r url && read -r token; } <"$DIR/apiserver.probe"
  nohup "${args[@]}" </dev/null >>"$DIR/apiserver.log" 2>&1 &
  echo $! >"$DIR/apiserver.pid"
  wait_for apiserver 120 curl -sf --max-time 2 --cacert "$DIR/pki/ca.crt" -H "Authorization: Bearer $token" "$url"
}

case $1 in
stop)
  stop
  exit 0
  ;;
stop-apiserver)
  stop_one apiserver
  exit 0
  ;;
start-apiserver)
  alive apiserver && die "the apiserver of $DIR is running"
  [[ -f $DIR/apiserver.args ]] || die "no apiserver was started in $DIR"
  start_apiserver || not_ready apiserver
  exit 0
  ;;
esac

if alive apiserver || alive etcd; then die "already running in $DIR (stop it first)"; fi
bins=$("$(dirname "$0")/tools.sh" etcd kube-apiserver)
ETCD=$(sed -n 1p <<<"$bins") KUBE_APISERVER=$(sed -n 2p <<<"$bins")

# PKI: a CA, the apiserver's serving certificate, the service-account signing key, a token.
PKI=$DIR/pki
rm -rf "$PKI" "$DIR/etcd" && mkdir -p "$PKI"
# (&&-chained: set -e does not apply inside a subshell that is followed by ||. `req -CA` needs OpenSSL 3.)
(
  cd "$PKI" &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=portcullis-test-ca \
      -keyout ca.key -out ca.crt &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=kube-apiserver \
      -CA ca.crt -CAkey ca.key -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
      -addext basicConstraints=critical,CA:FALSE -addext extendedKeyUsage=serverAuth \
      -keyout apiserver.key -out apiserver.crt &&
    openssl genrsa -out sa.key 2048 &&
    openssl rsa -in sa.key -pubout -out sa.pub
) >"$DIR/pki.log" 2>&1 || die "openssl failed; see $DIR/pki.log"
TOKEN=$(openssl rand -hex 24)
echo "$TOKEN,admin,admin,\"system:masters\"" >"$PKI/tokens.csv"
chmod 600 "$PKI"/*.key "$PKI/tokens.csv"

if [[ -n ${CONTROL_PLANE_OWNER:-} ]]; then
  [[ $CONTROL_PLANE_OWNER =~ ^[0-9]+$ ]] || die "CONTROL_PLANE_OWNER must be a PID"
  self=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
  # Polls once a second for at most a day; its command line names DIR, so `alive watch` works.
  # shellcheck disable=SC2016 # expanded by the inner bash
  nohup bash -c 'for ((i = 0; i < 86400; i++)); do kill -0 "$1" 2>/dev/null || break; sleep 1; done; exec "$2" stop "$3"' \
    control-plane-watch "$CONTROL_PLANE_OWNER" "$self" "$DIR" </dev/null >/dev/null 2>&1 &
  echo $! >"$DIR/watch.pid"
fi

for ((attempt = 1; ; attempt++)); do
  free_port ETCD_CLIENT
  free_port ETCD_PEER
  rm -rf "$DIR/etcd" # a fresh member for these ports
  # --unsafe-no-fsync: throwaway data; fsync would dominate test time on slow disks.
  nohup "$ETCD" --name cp --data-dir "$DIR/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
    --initial-cluster "cp=http://127.0.0.1:$ETCD_PEER" \
    </dev/null >"$DIR/etcd.log" 2>&1 &
  echo $! >"$DIR/etcd.pid"
  wait_for etcd 30 curl -sf --max-time 2 "http://127.0.0.1:$ETCD_CLIENT/health" && break
  retry_or_fail etcd "$attempt"
done

# --allow-privileged: as kubeadm and managed clusters run it (the default, false, makes the
# apiserver itself refuse privileged containers, before any admission webhook sees them).
# --endpoint-reconciler-type none: the "kubernetes" Endpoints may not hold a loopback address
# (the apiserver would log an error every 10 s) and nothing here routes to that Service anyway.
for ((attempt = 1; ; attempt++)); do
  free_port API_PORT
  printf '%s\n' "$KUBE_APISERVER" \
    --etcd-servers "http://127.0.0.1:$ETCD_CLIENT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --endpoint-reconciler-type none --allow-privileged=true \
    --cert-dir "$PKI" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --token-auth-file "$PKI/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --disable-admission-plugins ServiceAccount \
    --enable-admission-plugins ValidatingAdmissionWebhook,NamespaceLifecycle \
    >"$DIR/apiserver.args"
  printf '%s\n' "https://127.0.0.1:$API_PORT/readyz" "$TOKEN" >"$DIR/apiserver.probe"
  chmod 600 "$DIR/apiserver.probe"
  : >"$DIR/apiserver.log"
  start_apiserver && break
  retry_or_fail apiserver "$attempt"
done

cat >"$DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: portcullis-test
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: portcullis-test
  context: {cluster: portcullis-test, user: admin}
current-context: portcullis-test
EOF
chmod 600 "$DIR/kubeconfig"
echo "$DIR/kubeconfig"
