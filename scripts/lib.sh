# Shared by scripts/run and scripts/test: the toolchain Mercato needs, installed idempotently.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Builds live outside the clone so a fresh clone (CI) reuses compiled dependencies.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mercato/target}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Pinned npm packages (Anvil, solc, OpenZeppelin) from package-lock.json; reinstalled only when
# the lock file changed.
ensure_npm() {
  command -v npm >/dev/null || { echo "npm is required (Node.js 20+); install it with your package manager" >&2; exit 1; }
  local want have=""
  want="$(sha256sum package-lock.json | cut -d' ' -f1)"
  [ -f node_modules/.mercato-lock ] && have="$(cat node_modules/.mercato-lock)"
  if [ "$want" != "$have" ] || ! [ -x "$(anvil_path)" ]; then
    say "installing the pinned chain toolchain (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" > node_modules/.mercato-lock
  fi
}

# The web front end's packages (web/package-lock.json), installed when the lock changed.
ensure_web_npm() {
  local want have=""
  want="$(sha256sum web/package-lock.json | cut -d' ' -f1)"
  [ -f web/node_modules/.mercato-lock ] && have="$(cat web/node_modules/.mercato-lock)"
  if [ "$want" != "$have" ]; then
    say "installing the web front end's pinned packages (npm ci in web/)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" > web/node_modules/.mercato-lock
  fi
}

# Builds web/ into web/dist when its sources, lock or API document changed since the last build.
build_web() {
  ensure_web_npm
  local want have=""
  want="$(cd web && find src public index.html package-lock.json vite.config.ts tsconfig.json -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
  [ -f web/dist/.mercato-sources ] && have="$(cat web/dist/.mercato-sources)"
  if [ "$want" != "$have" ] || ! [ -f web/dist/index.html ]; then
    say "building the web front end"
    (cd web && npm run --silent build >/dev/null)
    echo "$want" > web/dist/.mercato-sources
  fi
}

anvil_path() {
  local arch
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  echo "$ROOT/node_modules/@foundry-rs/anvil-$(uname -s | tr 'A-Z' 'a-z')-$arch/bin/anvil"
}

# Debian packages for test services, installed when missing (root or sudo).
ensure_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# A real IPFS daemon for the content-store tests: js-ipfs (Kubo is not installable here), pinned
# to ipfs@0.66.1 with its dependencies as published before 2024-12-20, installed outside the clone
# once (about 3.5 minutes) and reused.
ensure_jsipfs() {
  local dir="$HOME/.cache/mercato/ipfs" want have=""
  want="$(sha256sum scripts/ipfs-daemon/package.json | cut -d' ' -f1)"
  [ -f "$dir/.mercato-stamp" ] && have="$(cat "$dir/.mercato-stamp")"
  if [ "$want" != "$have" ] || ! [ -x "$dir/node_modules/.bin/jsipfs" ]; then
    say "installing js-ipfs for the content-store tests (once, a few minutes)"
    mkdir -p "$dir"
    cp scripts/ipfs-daemon/package.json "$dir/package.json"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error --no-package-lock --before=2024-12-20)
    echo "$want" > "$dir/.mercato-stamp"
  fi
  export MERCATO_JSIPFS="$dir/node_modules/.bin/jsipfs"
}

# Schemathesis, which fuzzes the API against its OpenAPI document, with every dependency pinned,
# in a virtual environment outside the clone; reinstalled only when the pins change.
ensure_schemathesis() {
  local dir="$HOME/.cache/mercato/venv" want have=""
  want="$(sha256sum scripts/schemathesis/requirements.txt | cut -d' ' -f1)"
  [ -f "$dir/.mercato-stamp" ] && have="$(cat "$dir/.mercato-stamp")"
  if [ "$want" != "$have" ] || ! [ -x "$dir/bin/schemathesis" ]; then
    say "installing schemathesis for the API fuzz test"
    python3 -m venv "$dir" 2>/dev/null || { ensure_debs python3-venv && python3 -m venv "$dir"; }
    "$dir/bin/pip" install --quiet --disable-pip-version-check -r scripts/schemathesis/requirements.txt
    echo "$want" > "$dir/.mercato-stamp"
  fi
  export MERCATO_SCHEMATHESIS="$dir/bin/schemathesis"
}
