#!/usr/bin/env bash
# The crate graph is the architecture; this holds it (make test runs it):
# - warmpool-core has no AWS SDK, aws-config, Lambda runtime or simulator dependency;
# - no function links the simulator, and the simulator (so the demo) builds no AWS SDK;
# - no source file under shared/ is over 600 lines.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo=${CARGO:-cargo}
fail=0
forbid() {
    local package=$1 pattern=$2 why=$3
    local tree found
    # A failing `cargo tree` fails the check (set -e), never passes it empty.
    tree=$("$cargo" tree -p "$package" -e normal --prefix none --format '{p}')
    [ -n "$tree" ] || { echo "cargo tree printed nothing for $package" >&2; exit 1; }
    found=$(echo "$tree" | grep -E "$pattern" | sort -u || true)
    if [ -n "$found" ]; then
        echo "layering: $package must not depend on $why, but does:" >&2
        echo "$found" | sed 's/^/  /' >&2
        fail=1
    fi
}
forbid warmpool-core '^(aws-sdk-|aws-config |lambda_runtime |warmpool-(sim|aws|lambda) )' "an AWS SDK, aws-config, the Lambda runtime or another warmpool crate"
forbid warmpool-lambda '^(aws-sdk-|aws-config |warmpool-(sim|aws) )' "an AWS SDK or the simulator"
forbid warmpool-sim '^(aws-sdk-|aws-config |warmpool-aws )' "an AWS SDK (the simulator drives the handlers alone)"
for f in signup lifecycle command-status reconcile pool-sizer; do
    forbid "warmpool-$f" '^warmpool-(sim|cli) ' "the simulator"
done
long=$(find shared -name '*.rs' -exec awk 'END { if (NR > 600) print FILENAME ": " NR " lines" }' {} \;)
if [ -n "$long" ]; then
    echo "source files over 600 lines under shared/:" >&2
    echo "$long" | sed 's/^/  /' >&2
    fail=1
fi
[ "$fail" = 0 ] && echo "layers: core, lambda, aws, sim and the functions depend only downward; no file under shared/ is over 600 lines"
exit "$fail"
