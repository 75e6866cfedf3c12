#!/usr/bin/env bash
# The isolation tests again, as an ordinary user (uid 65534), for what root's powers could hide:
# root bypasses RLIMIT_NPROC, reads any process's environ, and gets cgroups an ordinary user lacks.
# Needs root (to become that user). The user must reach the interpreter and the checkout; where an
# ancestor directory shuts it out (/root is 0700), a private mount namespace lays a world-readable
# tmpfs over that directory and binds back just those two paths (nothing changes outside it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd -P)
cd "$here/.."
[ "$(id -u)" = 0 ] || { echo "tools/test_as_user.sh: run as root (it switches to uid 65534)" >&2; exit 2; }
user=65534
if [ -z "${PIXIE_IN_PRIVATE_MOUNTS:-}" ]; then
  exec env PIXIE_IN_PRIVATE_MOUNTS=1 unshare --mount --propagation private "$here/test_as_user.sh" "$@"
fi
reachable() { setpriv --reuid=$user --regid=$user --clear-groups test -r "$1" -a -x "$1"; }
# The first ancestor of $1 the user cannot enter, or nothing.
shut_ancestor() {
  local path=/ part
  IFS=/ read -ra parts <<<"${1#/}"
  for part in "${parts[@]}"; do
    path="${path%/}/$part"
    reachable "$path" || { echo "$path"; return; }
  done
}
keep=$(mktemp -d /run/pixie-as-user.XXXXXX)
needed=("$(dirname "$(dirname "$(readlink -f .venv/bin/python)")")" "$(pwd -P)")
for path in "${needed[@]}"; do
  shut=$(shut_ancestor "$path")
  [ -n "$shut" ] || continue
  i=0
  for p in "${needed[@]}"; do  # everything needed under it, kept aside before the tmpfs hides it
    case "$p/" in "$shut"/*) mkdir -p "$keep/$i"; mount --bind "$p" "$keep/$i" ;; esac
    i=$((i + 1))
  done
  mount -t tmpfs -o mode=755 pixie-as-user "$shut"
  i=0
  for p in "${needed[@]}"; do
    case "$p/" in "$shut"/*) mkdir -p "$p"; mount --bind "$keep/$i" "$p"; umount "$keep/$i"; rmdir "$keep/$i" ;; esac
    i=$((i + 1))
  done
done
rmdir "$keep"  # a real folder (only the mounts are private): nothing may stay in /run
files=(tests/test_isolation.py tests/test_local_sandbox.py tests/test_no_isolation_secrets.py
       tests/test_egress.py tests/test_bounds_memory_disk.py tests/test_secrets.py)
exec setpriv --reuid=$user --regid=$user --clear-groups \
  env HOME=/var/tmp PYTHONDONTWRITEBYTECODE=1 \
  .venv/bin/python -m pytest -q -p no:cacheprovider -n 2 "${files[@]}" ${PYTEST_ARGS:-}
