#!/usr/bin/env bash
# Installs what the FUSE tests (__test__/slowfs.test.mjs) need, where it is missing: Debian's
# fuse3 (libfuse 3 and fusermount3) and the Python `mfusepy` bindings that scripts/slowfs.py is
# written with (into target/slowfs-python, not the system's Python). Safe to run again: it only
# installs what is absent. Where the kernel offers no /dev/fuse it says so and installs nothing;
# the tests then skip with the same reason.
#
# Usage: scripts/slowfs-setup.sh          (prints the PYTHONPATH to use on its last line)
set -euo pipefail
cd "$(dirname "$0")/.."

MFUSEPY_VERSION=3.1.1
target=target/slowfs-python

if [ ! -e /dev/fuse ]; then
  echo "slowfs-setup: no /dev/fuse on this machine; the FUSE tests will be skipped" >&2
  exit 0
fi

if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
if ! command -v fusermount3 >/dev/null || ! ldconfig -p 2>/dev/null | grep -q 'libfuse3\.so\.3 '; then
  echo "slowfs-setup: installing Debian's fuse3" >&2
  # Another apt run on the machine holds the lock for a while: wait for it rather than fail.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends fuse3 >/dev/null
fi

if ! PYTHONPATH="$target" python3 -c "import mfusepy" 2>/dev/null; then
  echo "slowfs-setup: installing mfusepy $MFUSEPY_VERSION into $target" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-deps --upgrade \
    --target "$target" "mfusepy==$MFUSEPY_VERSION"
fi
PYTHONPATH="$target" python3 -c "import mfusepy" >/dev/null
echo "$PWD/$target"
