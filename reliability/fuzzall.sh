#!/usr/bin/env bash
# fuzzall.sh runs every Go fuzz target of the given packages for a fixed
# fuzz time, a few at a time at low priority, and writes a Markdown table of
# the results (target, package, wall minutes, execs, new inputs, result).
#
# Usage (from the repository root):
#
#   reliability/fuzzall.sh [-t 10m] [-p 1] [-j 3] [-o DIR] [-r REGEX] [PKG...]
#
#   -t  fuzz time per target (go test -fuzztime), default 10m
#   -p  fuzz workers per target (go test -parallel), default 1
#   -j  fuzzers run at the same time on the machine, default 3 (counting
#       every `go test -run '^$' -fuzz`, so invocations share the limit)
#   -o  output directory for logs, per-target rows and table.md,
#       default ${TMPDIR:-/tmp}/hookgate-fuzz (keep it out of the repository)
#   -r  only targets whose name matches this regex (awk ERE)
#   -n  nice level, default 19
#   PKG packages to list targets in, default ./...
#
# Targets are listed with `go test -list '^Fuzz' PKG`; each is run with
# `go test -run '^$' -fuzz '^Name$' -fuzztime T -parallel P PKG`. Rows are
# kept per target in DIR/rows, so a second invocation with the same DIR (for
# targets added later) adds to the same table. The fuzz cache stays in the
# default GOCACHE, so the generated corpus grows from run to run.
#
# Result column: "ok"; "ok (coordinator deadline flake)" when go test
# failed only with "context deadline exceeded", wrote no crasher, printed no
# "Failing input written to" line and ended after the fuzz time: Go 1.26's
# coordinator race at the end of -fuzztime (golang/go#75804, fixed in Go
# 1.27); "CRASHER pkg/testdata/fuzz/Name/<file>" when the fuzzer wrote a
# failing input (a real failure: minimise it, keep it as a seed, fix the
# cause); "FAIL (exit N, see log)" otherwise. Exits 1 if any row is not ok,
# 2 on a usage error or when no target matches.
set -u

fuzztime=10m
parallel=1
jobs=3
out=${TMPDIR:-/tmp}/hookgate-fuzz
only=.
nicelevel=19
while getopts "t:p:j:o:r:n:" opt; do
	case $opt in
	t) fuzztime=$OPTARG ;;
	p) parallel=$OPTARG ;;
	j) jobs=$OPTARG ;;
	o) out=$OPTARG ;;
	r) only=$OPTARG ;;
	n) nicelevel=$OPTARG ;;
	*) sed -n '2,/^set -u/p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || set -- ./...
# The flake check compares the run's length with the fuzz time, so only a
# whole number of seconds, minutes or hours is accepted (not 1m30s or an
# execution count such as 1000x).
if ! echo "$fuzztime" | grep -Eq '^[0-9]+[smh]$'; then
	echo "fuzzall.sh: -t $fuzztime: want a whole number of s, m or h (e.g. 90s, 10m)" >&2
	exit 2
fi

mkdir -p "$out/logs" "$out/rows" || exit 2

# list_targets prints "pkgdir target" for every fuzz target in the packages.
# Only packages whose test files declare a func Fuzz are asked (go test -list
# builds the test binary), at the fuzzers' priority.
list_targets() {
	local dir name
	for dir in $(fuzz_packages "$@"); do
		for name in $(nice -n "$nicelevel" go test -list '^Fuzz' "$dir" | grep '^Fuzz'); do
			echo "$dir $name"
		done
	done
}

# fuzz_packages prints ./dir for each package with a func Fuzz in a test file.
fuzz_packages() {
	go list -f '{{$d := .Dir}}{{range .TestGoFiles}}{{$d}}/{{.}} {{end}}{{range .XTestGoFiles}}{{$d}}/{{.}} {{end}}' "$@" |
		xargs -r grep -l '^func Fuzz' | xargs -r -n1 dirname | sort -u |
		while read -r pkg; do echo "./$(realpath --relative-to=. "$pkg")"; done
}

# crashers lists the files in the target's corpus directory, sorted.
crashers() {
	ls "$1/testdata/fuzz/$2" 2>/dev/null | sort
}

# run_one fuzzes one target and writes its Markdown row to $out/rows/.
run_one() {
	local dir=$1 name=$2 log="$out/logs/$2.log"
	local before after new start end rc secs execs interesting result
	before=$(crashers "$dir" "$name")
	start=$(date +%s)
	nice -n "$nicelevel" go test -run '^$' -fuzz "^${name}\$" \
		-fuzztime "$fuzztime" -parallel "$parallel" "$dir" >"$log" 2>&1
	rc=$?
	end=$(date +%s)
	secs=$((end - start))
	after=$(crashers "$dir" "$name")
	new=$(comm -13 <(echo "$before") <(echo "$after") | grep . | head -1)
	# Last progress line: "fuzz: elapsed: 600s, execs: 123 (4/sec), new interesting: 5 (total: 9)".
	execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
	interesting=$(grep -o 'new interesting: [0-9]*' "$log" | tail -1 | cut -d' ' -f3)
	if [ -n "$new" ]; then
		result="CRASHER ${dir#./}/testdata/fuzz/$name/$new"
	elif [ $rc -eq 0 ]; then
		result=ok
	elif grep -q 'context deadline exceeded' "$log" &&
		! grep -q 'Failing input written to' "$log" &&
		[ "$secs" -ge "$(fuzz_seconds)" ]; then
		result="ok (coordinator deadline flake)"
	else
		result="FAIL (exit $rc, see $log)"
	fi
	printf '| %s | %s | %d.%d | %s | %s | %s |\n' "$name" "${dir#./}" \
		$((secs / 60)) $((secs % 60 * 10 / 60)) "$(group "${execs:-0}")" \
		"${interesting:-0}" "$result" >"$out/rows/$name.md"
	echo "$(date -u +%H:%M:%S) done $name: $result" >&2
}

# fuzz_seconds converts the -fuzztime duration (Ns, Nm, Nh) to seconds.
fuzz_seconds() {
	case $fuzztime in
	*h) echo $((${fuzztime%h} * 3600)) ;;
	*m) echo $((${fuzztime%m} * 60)) ;;
	*s) echo "${fuzztime%s}" ;;
	*) echo 0 ;;
	esac
}

# group prints an integer with thousands separators.
group() {
	echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'
}

targets=$(list_targets "$@" | awk -v re="$only" '$2 ~ re')
[ -n "$targets" ] || { echo "no fuzz targets match" >&2; exit 2; }
echo "$(date -u +%H:%M:%S) $(echo "$targets" | wc -l) targets, fuzztime $fuzztime, $jobs at a time" >&2

# running counts the fuzzers running now: this invocation's and any other
# `go test -run '^$' -fuzz` on the machine (a second invocation for targets
# added later shares the -j limit with the first).
running() {
	local own others
	own=$(jobs -rp | wc -l)
	others=$(pgrep -c -f "^go test -run \\^\\\$ -fuzz ")
	echo $((own > others ? own : others))
}

while read -r dir name; do
	while [ "$(running)" -ge "$jobs" ]; do
		sleep 5
	done
	echo "$(date -u +%H:%M:%S) start $name ($dir)" >&2
	run_one "$dir" "$name" &
	sleep 2 # until its go test shows in running
done <<<"$targets"
wait

{
	echo "| target | package | minutes | execs | new inputs | result |"
	echo "|---|---|---:|---:|---:|---|"
	cat "$out"/rows/*.md
} >"$out/table.md"
cat "$out/table.md"
! grep -qv '| ok' "$out"/rows/*.md
