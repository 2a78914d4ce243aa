#!/usr/bin/env bash
# `make test`: the stack tier (one shared Ray stack, tests in order) in the foreground and, beside
# it at the lowest CPU priority, the fast tier (`make fast`). The stack tier mostly waits on
# timers (ticks, reports, bakes: about 60% of the CPU idle), so the fast tier runs in that idle
# time instead of adding its own minute. It starts once the stack is up (the start-up is the
# stack tier's busiest minute), and its output follows the stack tier's.
set -u
py=${1:-.venv/bin/python}
log=$(mktemp -t gantry-fast-tier.XXXXXX)
ready=$(mktemp -u -t gantry-stack-up.XXXXXX)   # tests/conftest.py creates it once the stack is up
(while [ ! -e "$ready" ]; do sleep 1; done
 exec nice -n 19 "$py" -m pytest -q -n 2 -m "not stack" tests >"$log" 2>&1) &
fast=$!
trap 'kill "$fast" 2>/dev/null; rm -f "$log" "$ready"' INT TERM
GANTRY_TEST_STACK_UP_FILE=$ready "$py" -m pytest -q -x -n 2 --dist loadfile -m stack tests --durations=40
stack_rc=$?
touch "$ready"   # a stack tier that ended before its stack was up: the fast tier runs now
wait "$fast"
fast_rc=$?
echo "--- the fast tier (no Ray), run beside the stack tier (exit $fast_rc):"
cat "$log"
rm -f "$log" "$ready"
exit $(( stack_rc || fast_rc ))
