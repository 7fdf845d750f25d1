#!/bin/sh
# demo.sh: `make demo` — runs examples/hello.lua against a loopback HTTP
# service this script starts (tests/doubles/httpd.py) and always stops.
set -eu
cd "$(dirname "$0")/.."
dir=$(mktemp -d)
/usr/bin/python3 tests/doubles/httpd.py --port 0 --port-file "$dir/port" >"$dir/log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0
until [ -s "$dir/port" ]; do
    i=$((i + 1))
    if [ $i -gt 200 ] || ! kill -0 $server 2>/dev/null; then
        echo "demo: the loopback server did not start" >&2
        cat "$dir/log" >&2
        exit 1
    fi
    sleep 0.05
done
url="http://127.0.0.1:$(cat "$dir/port")"
echo "demo: service at $url"
./ferry run examples/hello.lua -p url="$url" --junit "$dir/hello.junit.xml"
echo "demo: ok — JUnit report had $(grep -c '<testcase' "$dir/hello.junit.xml") testcases"
echo
echo "demo: the same with a step failing on purpose: the undo action and teardown run, exit 1"
code=0
./ferry run examples/hello.lua -p url="$url" -p fail=true -p items=5 || code=$?
if [ "$code" -ne 1 ]; then
    echo "demo: expected exit code 1, got $code" >&2
    exit 1
fi
echo "demo: ok — exit code 1, undo and teardown ran"
