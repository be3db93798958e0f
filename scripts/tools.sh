#!/usr/bin/env bash
# Build (once) and cache the external tools portcullis' tests need; print the absolute path
# of each binary on stdout, one per line, in the order asked. Progress goes to stderr.
#
#   scripts/tools.sh etcd kube-apiserver     # -> /root/.cache/portcullis-tools/etcd-v3.6.14/etcd ...
#
# Go tools are built from the Go module proxy (see the test-environment guide); each lands in
# $ROOT/NAME-VERSION/NAME, so a cached binary is reused instantly and a version bump rebuilds.
set -euo pipefail

ETCD_VERSION=v3.6.14
KUBE_VERSION=v1.35.2 # its staging modules (k8s.io/api, ...) are pinned to v0.35.2, except:
# the module proxy answers 403 "not available" for these two at v0.35.2; their v0.35.1 and v0.35.3
# sources are identical (only go.mod/go.sum differ), so v0.35.1 builds the same code.
KUBE_STAGING_EXCEPTIONS="k8s.io/externaljwt@v0.35.1 k8s.io/kube-controller-manager@v0.35.1"
COSIGN_VERSION=v2.6.4
# cosign 3: the Sigstore bundle in the OCI referrers by default (what teams sign with today).
COSIGN3_VERSION=v3.1.3
CRANE_VERSION=v0.21.9
# A registry that serves the OCI 1.1 referrers API (Debian's docker-registry and the released
# distribution 3 do not): go-containerregistry's registry with referrers on, from our
# tests/referrers-registry (its version: crane's, and a hash of that source).
HELM_VERSION=v3.21.4
OPA_VERSION=v1.20.2
GATOR_VERSION=v3.23.0
# A load generator with fixed rates and latency histograms (the benches' client).
VEGETA_VERSION=v12.13.0
# CRDs of the objects the chart renders for other operators (cert-manager's Certificate and
# Issuer, Prometheus Operator's ServiceMonitor and PrometheusRule), from those Go modules.
CERT_MANAGER_VERSION=v1.19.1
PROMETHEUS_OPERATOR_VERSION=v0.85.0
# The report CRDs the audit's reports are written against: OpenReports' Report and
# ClusterReport, and the older wgpolicyk8s.io PolicyReport and ClusterPolicyReport (not a module
# of their own on the proxy; Kyverno's module carries them).
OPENREPORTS_VERSION=v0.2.1
KYVERNO_VERSION=v1.19.1
# Prometheus and promtool, to scrape a live portcullis and to check and unit-test the chart's
# rules (module v0.X.Y is Prometheus 3.X.Y).
PROMETHEUS_VERSION=v0.316.0
# The readers of `check`'s CI outputs that CI systems use: Microsoft's SARIF validator (npm) and
# junitparser (PyPI), each installed once into its own directory.
SARIF_MULTITOOL_VERSION=5.7.0
JUNITPARSER_VERSION=5.0.3
# The fuzz targets' runner (scripts/fuzz.sh), from crates.io.
CARGO_FUZZ_VERSION=0.13.2
KNOWN="etcd kube-apiserver kubectl cosign cosign3 crane referrers-registry helm opa gator vegeta registry crds report-crds prometheus promtool sarif-multitool junitparser cargo-fuzz"

ROOT=${PORTCULLIS_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis-tools}
# Never fetch another toolchain; one module/build cache under ROOT so CI can cache it whole.
# -buildvcs=false: a wrapper module under ROOT may sit inside someone's git checkout.
export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" GOMODCACHE=$ROOT/go/mod GOCACHE=$ROOT/go/build

die() { echo "tools.sh: $*" >&2; exit 1; }

# go_tool NAME VERSION RECIPE ARGS...: print ROOT/NAME-VERSION/NAME, running RECIPE first unless cached.
go_tool() {
  local name=$1 version=$2 recipe=$3
  shift 3
  local dir=$ROOT/$name-$version
  local bin=$dir/$name log=$ROOT/logs/$name-$version.log lock
  if [[ ! -x $bin ]]; then
    mkdir -p "$dir" "$ROOT/logs" "$ROOT/locks"
    # One builder per tool+version; a second caller waits, then finds the binary built.
    exec {lock}>"$ROOT/locks/$name-$version.lock"
    flock "$lock"
    if [[ ! -x $bin ]]; then
      echo "tools.sh: building $name $version (log: $log)" >&2
      local start=$SECONDS
      # Not `if ! (...)`: that context would silently disable set -e inside the recipe.
      local rc=0
      set +e
      (set -e && cd "$dir" && "$recipe" "$bin.tmp" "$@") >"$log" 2>&1
      rc=$?
      set -e
      if ((rc != 0)); then
        echo "tools.sh: building $name $version failed; last 30 lines of $log:" >&2
        tail -n 30 "$log" >&2
        exit 1
      fi
      mv -f "$bin.tmp" "$bin" # atomic: a half-written binary is never seen as cached
      echo "tools.sh: built $name $version in $((SECONDS - start)) s" >&2
    fi
    exec {lock}>&-
  fi
  echo "$bin"
}

build() { nice -n 10 go build -p 2 -trimpath -ldflags "${LDFLAGS:-}" "$@"; }

# go_mod MODULE@VERSION: path of that module's go.mod in the module cache.
go_mod() {
  local f
  f=$(go mod download -json "$1" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
  [[ -n $f ]] || die "no go.mod for $1"
  echo "$f"
}

# Modules without replace directives: plain `go install PKG@VERSION`.
recipe_install() { # OUT PKG@VERSION
  GOBIN=$PWD/gobin nice -n 10 go install -p 2 -trimpath -ldflags "${LDFLAGS:-}" "$2"
  # One binary, named by go (a module path's /vN suffix is not its name).
  local built=(gobin/*)
  ((${#built[@]} == 1)) || die "go install $2 built ${#built[@]} binaries"
  mv -f "${built[0]}" "$1" && rmdir gobin
}

# Our own small registry program (tests/referrers-registry) against go-containerregistry.
recipe_referrers_registry() { # OUT SOURCE_DIR
  rm -rf src && mkdir src && cd src
  cp "$2/main.go" .
  go mod init local/referrers-registry
  go get "github.com/google/go-containerregistry@$CRANE_VERSION"
  build -o "$1" .
}

# Modules with replace directives (go install refuses them): build from a wrapper module.
# The wrapper is kept in DIR/wrapper as a record of the exact dependency set. No `go mod tidy`:
# it would drop the requirement on the main package.
recipe_wrapper() { # OUT MODULE@VERSION PKG [go mod edit args...]
  local out=$1 modver=$2 pkg=$3
  shift 3
  rm -rf wrapper && mkdir wrapper && cd wrapper
  go mod init local/wrapper
  if (($#)); then go mod edit "$@"; fi
  go get "$modver"
  build -o "$out" "$pkg"
}

# A command of k8s.io/kubernetes (kube-apiserver, kubectl) at KUBE_VERSION, from a wrapper module.
recipe_kube() { # OUT CMD
  local staging=v0.${KUBE_VERSION#v1.} gomod
  # The staging modules are the `k8s.io/X => ./staging/src/k8s.io/X` replaces of kubernetes' go.mod.
  gomod=$(go_mod "k8s.io/kubernetes@$KUBE_VERSION")
  local -a edits=()
  local m
  while read -r m; do
    edits+=("-replace=$m=$m@$staging")
  done < <(sed -n 's#^\s*\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$gomod")
  ((${#edits[@]} > 20)) || die "found only ${#edits[@]} staging modules in $gomod"
  for m in $KUBE_STAGING_EXCEPTIONS; do edits+=("-replace=${m%@*}=$m"); done # last one wins
  # Stamp the version as the release build does: unstamped, /version says v0.0.0-master+$Format:%H$,
  # which kubectl and helm (.Capabilities.KubeVersion) fail to parse. kubectl's client version
  # comes from client-go's copy of the same variables.
  local minor=${KUBE_VERSION#v1.} v
  LDFLAGS=
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LDFLAGS+=" -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=${minor%%.*} -X $v.gitTreeState=clean"
  done
  recipe_wrapper "$1" "k8s.io/kubernetes/cmd/$2@$KUBE_VERSION" "k8s.io/kubernetes/cmd/$2" "${edits[@]}"
}

recipe_kube_apiserver() { recipe_kube "$1" kube-apiserver; } # OUT
recipe_kubectl() { recipe_kube "$1" kubectl; }               # OUT

recipe_helm() { # OUT
  # Stamp as helm's Makefile does: unstamped, `helm version` says v3.21 and `helm template`/`lint`
  # assume Kubernetes v1.20 (.Capabilities.KubeVersion), rejecting charts that need a newer one.
  local h=helm.sh/helm/v3 minor
  minor=$(sed -n 's#^\s*k8s\.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$(go_mod "$h@$HELM_VERSION")")
  [[ -n $minor ]] || die "no k8s.io/client-go version in helm's go.mod"
  LDFLAGS="-X $h/internal/version.version=$HELM_VERSION -X $h/internal/version.gitTreeState=clean"
  LDFLAGS+=" -X $h/pkg/chartutil.k8sVersionMajor=1 -X $h/pkg/chartutil.k8sVersionMinor=$minor"
  LDFLAGS+=" -X $h/pkg/lint/rules.k8sVersionMajor=1 -X $h/pkg/lint/rules.k8sVersionMinor=$minor"
  recipe_install "$1" "$h/cmd/helm@$HELM_VERSION"
}

# go_mod_dir MODULE@VERSION: that module's extracted source in the module cache.
go_mod_dir() {
  local d
  d=$(go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -n $d && -d $d ]] || die "no source directory for $1"
  echo "$d"
}

# recipe_report_crds DIR: the report CRDs, copied from the module zips.
recipe_report_crds() {
  local openreports kyverno
  openreports=$(go_mod_dir "github.com/openreports/reports-api@$OPENREPORTS_VERSION")
  kyverno=$(go_mod_dir "github.com/kyverno/kyverno@$KYVERNO_VERSION")
  mkdir -p "$1"
  cp "$openreports"/config/crd/openreports.io_*.yaml "$kyverno"/config/crds/policyreport/wgpolicyk8s.io_*.yaml "$1/"
  chmod 644 "$1"/*.yaml # the module cache is read-only
  grep -q 'kind: CustomResourceDefinition' "$1/openreports.io_reports.yaml" "$1/wgpolicyk8s.io_policyreports.yaml" ||
    die "unexpected report CRD layout"
}

# recipe_crds DIR: CRD manifests (one YAML file each) copied from the module zips of
# cert-manager and prometheus-operator.
recipe_crds() {
  local cm po f
  cm=$(go_mod_dir "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION")
  po=$(go_mod_dir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")
  mkdir -p "$1"
  # cert-manager's plain CRDs (deploy/charts/... holds the same as Helm templates).
  for f in "$cm"/deploy/crds/*.yaml; do cp "$f" "$1/"; done
  # The variant without field descriptions, small enough for client-side apply.
  for f in servicemonitors prometheusrules; do
    cp "$po/example/prometheus-operator-crd/monitoring.coreos.com_$f.yaml" "$1/"
  done
  chmod 644 "$1"/*.yaml # the module cache is read-only
  grep -q 'kind: CustomResourceDefinition' "$1/cert-manager.io_certificates.yaml" || die "unexpected cert-manager CRD layout"
}

# Debian's CNCF distribution registry; apt-get update only when the first install fails.
registry() {
  local sudo=()
  ((EUID == 0)) || sudo=(sudo)
  if ! dpkg -s docker-registry >/dev/null 2>&1; then
    echo "tools.sh: installing docker-registry with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    { "${sudo[@]}" apt-get install -y docker-registry ||
      { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y docker-registry; }; } >&2 ||
      die "apt-get install docker-registry failed"
  fi
  echo /usr/bin/docker-registry
}

# installed NAME VERSION BIN RECIPE: print ROOT/NAME-VERSION/BIN (the directory itself when BIN
# is empty), running RECIPE DIR first (into a temporary directory, moved in place when it
# succeeds) unless cached.
installed() {
  local name=$1 version=$2 bin=$3 recipe=$4 dir=$ROOT/$1-$2 lock rc=0
  local log=$ROOT/logs/$name-$version.log
  if [[ ! -x $dir/$bin ]]; then
    mkdir -p "$ROOT/locks" "$ROOT/logs"
    exec {lock}>"$ROOT/locks/$name-$version.lock"
    flock "$lock"
    if [[ ! -x $dir/$bin ]]; then
      echo "tools.sh: installing $name $version (log: $log)" >&2
      rm -rf "$dir.tmp" "$dir"
      # Not `recipe || die`: that context would silently disable set -e inside the recipe.
      set +e
      (set -e && "$recipe" "$dir.tmp") >"$log" 2>&1
      rc=$?
      set -e
      ((rc == 0)) || die "installing $name failed; see $log"
      mv "$dir.tmp" "$dir"
    fi
    exec {lock}>&-
  fi
  echo "$dir${bin:+/$bin}"
}

# The npm package's own launcher (bin.js) picks the platform binary; no install scripts run.
recipe_sarif_multitool() {
  mkdir -p "$1"
  (cd "$1" && npm install --no-audit --no-fund --ignore-scripts "@microsoft/sarif-multitool@$SARIF_MULTITOOL_VERSION")
  chmod u+x "$1"/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool
  ln -s node_modules/.bin/sarif-multitool "$1/sarif-multitool"
}

# A virtual environment with junitparser; prints its python.
recipe_junitparser() {
  python3 -m venv "$1"
  "$1/bin/pip" install --quiet "junitparser==$JUNITPARSER_VERSION"
}

recipe_cargo_fuzz() {
  cargo install --locked --quiet --root "$1" --version "$CARGO_FUZZ_VERSION" cargo-fuzz
}

(($#)) || die "usage: $0 TOOL... (known: $KNOWN)"
for tool in "$@"; do
  case $tool in
  etcd) go_tool etcd "$ETCD_VERSION" recipe_wrapper \
    "go.etcd.io/etcd/server/v3@$ETCD_VERSION" go.etcd.io/etcd/server/v3 ;;
  kube-apiserver) go_tool kube-apiserver "$KUBE_VERSION" recipe_kube_apiserver ;;
  kubectl) go_tool kubectl "$KUBE_VERSION" recipe_kubectl ;;
  cosign) go_tool cosign "$COSIGN_VERSION" recipe_install \
    "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION" ;;
  cosign3) go_tool cosign3 "$COSIGN3_VERSION" recipe_install \
    "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN3_VERSION" ;;
  crane) go_tool crane "$CRANE_VERSION" recipe_install \
    "github.com/google/go-containerregistry/cmd/crane@$CRANE_VERSION" ;;
  helm) go_tool helm "$HELM_VERSION" recipe_helm ;;
  opa) go_tool opa "$OPA_VERSION" recipe_install "github.com/open-policy-agent/opa@$OPA_VERSION" ;;
  vegeta) go_tool vegeta "$VEGETA_VERSION" recipe_install "github.com/tsenart/vegeta/v12@$VEGETA_VERSION" ;;
  gator) go_tool gator "$GATOR_VERSION" recipe_install \
    "github.com/open-policy-agent/gatekeeper/v3/cmd/gator@$GATOR_VERSION" ;;
  prometheus) go_tool prometheus "$PROMETHEUS_VERSION" recipe_install \
    "github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" ;;
  promtool) go_tool promtool "$PROMETHEUS_VERSION" recipe_install \
    "github.com/prometheus/prometheus/cmd/promtool@$PROMETHEUS_VERSION" ;;
  registry) registry ;;
  referrers-registry)
    source=$(CDPATH='' cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../tests/referrers-registry" >/dev/null && pwd) ||
      die "tests/referrers-registry not found beside scripts/"
    go_tool referrers-registry "$CRANE_VERSION-$(sha256sum "$source/main.go" | cut -c1-12)" \
      recipe_referrers_registry "$source" ;;
  crds) installed crds "cert-manager-$CERT_MANAGER_VERSION-prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" "" recipe_crds ;;
  report-crds) installed report-crds "openreports-$OPENREPORTS_VERSION-kyverno-$KYVERNO_VERSION" "" recipe_report_crds ;;
  sarif-multitool) installed sarif-multitool "$SARIF_MULTITOOL_VERSION" sarif-multitool recipe_sarif_multitool ;;
  junitparser) installed junitparser "$JUNITPARSER_VERSION" bin/python recipe_junitparser ;;
  cargo-fuzz) installed cargo-fuzz "$CARGO_FUZZ_VERSION" bin/cargo-fuzz recipe_cargo_fuzz ;;
  *) die "unknown tool '$tool' (known: $KNOWN)" ;;
  esac
done
