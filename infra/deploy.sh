#!/usr/bin/env bash
# make deploy ENV=<stack>: `pulumi up` of one stack of this project (infra/Pulumi.<stack>.yaml).
#
# kind: the state goes to a local file backend under .local/kind/ (PULUMI_BACKEND_URL is set to
#   it whatever the environment says), encrypted with PULUMI_CONFIG_PASSPHRASE[_FILE] when set,
#   else with a passphrase generated into .local/kind/pulumi-passphrase. Pulumi writes a new
#   stack's encryption salt into the stack file it creates the stack with, rewriting that file
#   (comments lost): so the stack is created from a scratch copy of the project under
#   .local/kind/, and `pulumi up` reads a fresh copy of infra/Pulumi.kind.yaml (--config-file)
#   and takes the salt from the state (PULUMI_FALLBACK_TO_STATE_SECRETS_MANAGER). The committed
#   stack file is never written. `--refresh` reconciles the state with the cluster first (a
#   cluster recreated outside `make kind-down` is redeployed, not assumed).
# other stacks (dev, prod): refused unless PULUMI_BACKEND_URL names the team's state backend, so
#   the state of a shared stack never lands on one laptop by accident. `pulumi up --yes` prints
#   its preview, then applies it.
set -euo pipefail
SCRIPT=deploy
source "$(dirname "${BASH_SOURCE[0]}")/kind/lib.sh"

stack="${1:-}"
stacks="$(find infra -maxdepth 1 -name 'Pulumi.*.yaml' | sed -E 's|^infra/Pulumi\.(.*)\.yaml$|\1|' | sort | xargs)"
[[ -n "$stack" ]] || die "which stack? make deploy ENV=<one of: $stacks>"
[[ -f "infra/Pulumi.$stack.yaml" ]] || die "no stack '$stack' (no infra/Pulumi.$stack.yaml); stacks: $stacks"
facts

if [[ "$stack" != "$KIND_STACK" ]]; then
  [[ -n "${PULUMI_BACKEND_URL:-}" ]] ||
    die "refusing to deploy '$stack' without an explicit state backend: set PULUMI_BACKEND_URL (s3://<state bucket>, gs://<state bucket>, or https://api.pulumi.com with PULUMI_ACCESS_TOKEN) and, for a passphrase-encrypted stack, PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE; the local backend under .local/ is for the $KIND_STACK stack only"
  need pulumi
  log "stack $stack: state backend $PULUMI_BACKEND_URL"
  log "selecting (creating if absent) stack $stack"
  bounded 300 pulumi stack select --create "$stack" --cwd infra --non-interactive
  log "pulumi up on $stack: preview, then apply (a new cloud stack takes 20-40 minutes)"
  bounded 7200 pulumi up --stack "$stack" --cwd infra --yes --non-interactive
  log "deployed $stack; outputs:"
  bounded 300 pulumi stack output --stack "$stack" --cwd infra
  exit 0
fi

need pulumi docker kind
docker_engine_up
cluster_exists || die "kind cluster $KIND_CLUSTER_NAME is not up: make kind-up, then make images"

exports="$("$PY" "$KIND_PLATFORM" pulumi-env --create)" || exit 1
eval "$exports"
log "stack $stack: local state backend $PULUMI_BACKEND_URL;" \
  "passphrase from ${PULUMI_CONFIG_PASSPHRASE_FILE:-PULUMI_CONFIG_PASSPHRASE}"

scratch="$KIND_STATE_DIR/pulumi-project"
mkdir -p "$scratch"
printf 'name: %s\nruntime: python\n' "$PULUMI_PROJECT" >"$scratch/Pulumi.yaml"
log "selecting (creating if absent) stack $stack"
(cd "$scratch" && bounded 300 pulumi stack select --create "$stack" --non-interactive)

config_copy="$KIND_STATE_DIR/Pulumi.$stack.yaml"
cp "$PULUMI_STACK_FILE" "$config_copy"
log "pulumi up on $stack against context $KIND_CONTEXT: fake GPU operator, SeaweedFS, PostgreSQL," \
  "MLflow, Airflow (first run 10-20 minutes: chart downloads, image pulls, database migrations)"
bounded 3600 pulumi up --stack "$stack" --cwd infra --config-file "$config_copy" \
  --yes --non-interactive --skip-preview --refresh
log "deployed $stack; outputs:"
bounded 300 pulumi stack output --stack "$stack" --cwd infra
log "next: make e2e (UIs and port-forwards: docs/kind.md)"
