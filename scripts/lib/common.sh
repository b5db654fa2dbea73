# shellcheck shell=bash
# Shared by the scripts a person types: where tools and build output are cached, how the local
# AWS stack (DynamoDB Local + moto SQS) is installed and started. Sourced, never run.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${BGTASKS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/beneficiary-tasks}
# One target directory outside the clone: a fresh clone (CI) reuses what the last build compiled.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}
VENV=$CACHE/venv
NPM_PREFIX=$CACHE/npm
RUN_DIR=${RUN_DIR:-$CACHE/run}
mkdir -p "$CACHE" "$RUN_DIR"

# Versions pinned so that a second machine gets what the first one tested.
MOTO_VERSION=5.2.5
CFN_LINT_VERSION=1.58.0
CARGO_LAMBDA_VERSION=1.9.2
SCHEMATHESIS_VERSION=4.32.5
DDB_SIMULATOR_VERSION=2.9.30
CHECKOV_VERSION=3.3.30
CHECKOV_VENV=$CACHE/checkov-venv
OPENAPI_CLIENT_VERSION=0.29.1
CLIENT_VENV=$CACHE/client-venv

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_java() {
  command -v java >/dev/null 2>&1 && return
  log "installing a Java runtime for DynamoDB Local (apt: openjdk-17-jre-headless)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
}

ensure_jq() {
  command -v jq >/dev/null 2>&1 && return
  log "installing jq, for the README's log queries (apt: jq)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
}

# The console's browser test drives Debian's headless Chromium through its ChromeDriver.
ensure_chromium() {
  command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && return
  log "installing Chromium and ChromeDriver for the console's browser test (apt: chromium chromium-driver)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}

ensure_python_tools() {
  local stamp=$VENV/.installed-$MOTO_VERSION-$CFN_LINT_VERSION-$CARGO_LAMBDA_VERSION-$SCHEMATHESIS_VERSION
  [ -f "$stamp" ] && return
  log "installing moto[server], cfn-lint, cargo-lambda and schemathesis into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" \
    "cfn-lint==$CFN_LINT_VERSION" "cargo-lambda==$CARGO_LAMBDA_VERSION" \
    "schemathesis==$SCHEMATHESIS_VERSION"
  touch "$stamp"
}

# checkov has its own venv: its pins (boto3, networkx, …) must not move moto's or cfn-lint's.
ensure_checkov() {
  local stamp=$CHECKOV_VENV/.installed-$CHECKOV_VERSION
  [ -f "$stamp" ] && return
  log "installing checkov $CHECKOV_VERSION into $CHECKOV_VENV"
  python3 -m venv "$CHECKOV_VENV"
  "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  touch "$stamp"
}

# openapi-python-client (and the httpx and attrs its clients need) in a venv of its own, for the
# test that generates a client from docs/openapi.yaml.
ensure_client_generator() {
  local stamp=$CLIENT_VENV/.installed-$OPENAPI_CLIENT_VERSION
  [ -f "$stamp" ] && return
  log "installing openapi-python-client $OPENAPI_CLIENT_VERSION into $CLIENT_VENV"
  python3 -m venv "$CLIENT_VENV"
  "$CLIENT_VENV/bin/pip" install -q --disable-pip-version-check \
    "openapi-python-client==$OPENAPI_CLIENT_VERSION"
  touch "$stamp"
}

ddb_local_dir() {
  find "$NPM_PREFIX/node_modules/amplify-dynamodb-simulator" -name DynamoDBLocal.jar -printf '%h\n' 2>/dev/null | head -n 1
}

ensure_dynamodb_local() {
  [ -n "$(ddb_local_dir)" ] && return
  log "installing DynamoDB Local (npm: amplify-dynamodb-simulator@$DDB_SIMULATOR_VERSION) into $NPM_PREFIX"
  mkdir -p "$NPM_PREFIX"
  npm install --silent --no-audit --no-fund --prefix "$NPM_PREFIX" "amplify-dynamodb-simulator@$DDB_SIMULATOR_VERSION" >/dev/null
  [ -n "$(ddb_local_dir)" ] || { echo "DynamoDBLocal.jar not found after npm install" >&2; exit 1; }
}

ensure_tools() {
  ensure_java
  ensure_python_tools
  ensure_dynamodb_local
}

wait_for_port() { # host port name
  local i
  for i in $(seq 1 150); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "$3 did not open $1:$2" >&2
  return 1
}

# start_aws_stack DDB_PORT SQS_PORT: DynamoDB Local and moto's server on loopback. Both are
# stopped when the calling script exits. DynamoDB Local keeps its database in a fresh folder in
# memory (/dev/shm when there is one) rather than -inMemory, so that we can add the index its
# stream store lacks (scripts/lib/ddb_local_stream_index.py says why).
start_aws_stack() {
  local ddb_port=$1 sqs_port=$2 dir data
  dir=$(ddb_local_dir)
  data=$(mktemp -d "$( [ -w /dev/shm ] && echo /dev/shm || echo "${TMPDIR:-/tmp}")/bgtasks-ddb.XXXXXX")
  STACK_DIRS+=("$data")
  log "starting DynamoDB Local on 127.0.0.1:$ddb_port and moto (SQS) on 127.0.0.1:$sqs_port"
  (cd "$dir" && exec java -Djava.library.path=./DynamoDBLocal_lib -jar DynamoDBLocal.jar \
      -sharedDb -dbPath "$data" -port "$ddb_port" -disableTelemetry) >"$RUN_DIR/dynamodb-local.log" 2>&1 &
  STACK_PIDS+=($!)
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$sqs_port" >"$RUN_DIR/moto.log" 2>&1 &
  STACK_PIDS+=($!)
  wait_for_port 127.0.0.1 "$ddb_port" "DynamoDB Local"
  wait_for_port 127.0.0.1 "$sqs_port" "moto server"
  python3 "$ROOT/scripts/lib/ddb_local_stream_index.py" "$ddb_port" "$data/shared-local-instance.db"
}

STACK_PIDS=()
STACK_DIRS=()
stop_stack() {
  local pid
  for pid in "${STACK_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ ${#STACK_DIRS[@]} -eq 0 ] || rm -rf "${STACK_DIRS[@]}"
}
trap stop_stack EXIT
