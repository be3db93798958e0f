#!/usr/bin/env bash
# A throwaway single-node Kubernetes control plane (etcd + kube-apiserver) on loopback, for
# admission tests: no kubelet, scheduler or controller-manager is needed to exercise a webhook.
#
#   scripts/control-plane.sh start DIR   # prints DIR/kubeconfig once /readyz answers
#   scripts/control-plane.sh stop DIR    # idempotent
#
# With CONTROL_PLANE_OWNER=PID in the environment, start also leaves a watcher that runs
# `stop DIR` once that process has exited: a test passes its own PID, so the control plane
# goes away with the test binary even when the binary is killed before its cleanup runs.
# DIR holds pki/, etcd/ (data), kubeconfig, etcd.log, apiserver.log and *.pid.
# Each start is a fresh cluster: DIR/etcd and DIR/pki are recreated.
set -euo pipefail

die() { echo "control-plane.sh: $*" >&2; exit 1; }
if (($# != 2)) || [[ $1 != start && $1 != stop ]]; then die "usage: $0 start|stop DIR"; fi
mkdir -p "$2"
DIR=$(cd "$2" && pwd)

# alive NAME: the process in DIR/NAME.pid is running and is still ours (guards against PID reuse).
alive() {
  local pid
  pid=$(cat "$DIR/$1.pid" 2>/dev/null) || return 1
  [[ $(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") == *"$DIR"* ]] # 2> first, to cover the <
}

stop() {
  local name pid i
  # The watcher (unless this is the watcher itself, which execs `stop` when its owner is gone).
  if alive watch && [[ $(cat "$DIR/watch.pid") != "$$" ]]; then kill -TERM "$(cat "$DIR/watch.pid")" 2>/dev/null || true; fi
  rm -f "$DIR/watch.pid"
  for name in apiserver etcd; do
    if alive "$name"; then
      pid=$(cat "$DIR/$name.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for ((i = 0; i < 100; i++)); do # 10 s grace, then KILL
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$DIR/$name.pid"
  done
}

# free_port [EXCLUDED...]: a random loopback port nobody listens on (bounded number of tries).
# A race with another process remains possible; start fails loudly then (see the logs).
free_port() {
  local p i
  for ((i = 0; i < 50; i++)); do
    p=$((20000 + RANDOM % 40000))
    [[ " $* " == *" $p "* ]] && continue
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$p" 2>/dev/null || { echo "$p"; return; }
  done
  die "no free port found on 127.0.0.1 after $i tries"
}

# wait_for NAME SECONDS CMD...: poll CMD until it succeeds, for at most SECONDS; fail early
# if NAME died. Then stop everything and show the log.
wait_for() {
  local name=$1 deadline=$((SECONDS + $2))
  shift 2
  while ((SECONDS < deadline)); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$name" || break
    sleep 0.5
  done
  echo "control-plane.sh: $name not ready; last lines of $DIR/$name.log:" >&2
  tail -n 30 "$DIR/$name.log" >&2
  stop
  exit 1
}

if [[ $1 == stop ]]; then
  stop
  exit 0
fi

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

ETCD_CLIENT=$(free_port)
ETCD_PEER=$(free_port "$ETCD_CLIENT")
API_PORT=$(free_port "$ETCD_CLIENT" "$ETCD_PEER")

# --unsafe-no-fsync: throwaway data; fsync would dominate test time on slow disks.
nohup "$ETCD" --name cp --data-dir "$DIR/etcd" --unsafe-no-fsync \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "cp=http://127.0.0.1:$ETCD_PEER" \
  </dev/null >"$DIR/etcd.log" 2>&1 &
echo $! >"$DIR/etcd.pid"
wait_for etcd 30 curl -sf --max-time 2 "http://127.0.0.1:$ETCD_CLIENT/health"

# --allow-privileged: as kubeadm and managed clusters run it (the default, false, makes the
# apiserver itself refuse privileged containers, before any admission webhook sees them).
# --endpoint-reconciler-type none: the "kubernetes" Endpoints may not hold a loopback address
# (the apiserver would log an error every 10 s) and nothing here routes to that Service anyway.
nohup "$KUBE_APISERVER" \
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
  </dev/null >"$DIR/apiserver.log" 2>&1 &
echo $! >"$DIR/apiserver.pid"

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

wait_for apiserver 120 curl -sf --max-time 2 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $TOKEN" \
  "https://127.0.0.1:$API_PORT/readyz"
echo "$DIR/kubeconfig"
