# Shared helpers for integration/t_*.sh: TAP output and a lab per test file.
# Source it; it sets a trap that takes the lab down however the test ends.
# shellcheck shell=bash

VMK_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VMK_BIN=${VMK_BIN:-$VMK_TOP/build/bin}
export VMK_HOSTD=$VMK_BIN/hostd
LAB_DIR=${LAB_DIR:-/tmp/vmk-test-lab}
LAB=$VMK_TOP/integration/lab

# vmkctl keeps known_hosts and its certificate cache under $HOME/.vmk
T_HOME=$(mktemp -d /tmp/vmk-test-home.XXXXXX)
export HOME=$T_HOME
unset VMK_SERVER VMK_USERNAME VMK_PASSWORD VMK_THUMBPRINT VMK_LAB

t_n=0
t_failed=0

t_cleanup() {
	"$LAB" down --dir "$LAB_DIR" >/dev/null 2>&1
	rm -rf "$T_HOME"
}
trap t_cleanup EXIT

ok() { t_n=$((t_n + 1)); echo "ok $t_n - $*"; }
not_ok() {
	t_n=$((t_n + 1)); t_failed=$((t_failed + 1))
	echo "not ok $t_n - $1"
	shift
	[[ $# -gt 0 ]] && printf '%s\n' "$@" | sed 's/^/#   /'
	return 0
}
skip() { t_n=$((t_n + 1)); echo "ok $t_n - $1 # SKIP $2"; }

# run CMD...: runs it, keeping stdout in $out, stderr in $err, status in $rc.
run() {
	local ef
	ef=$(mktemp)
	out=$("$@" 2>"$ef")
	rc=$?
	err=$(cat "$ef")
	rm -f "$ef"
}

# expect CODE NAME CMD...: the command exits with CODE.
expect() {
	local code=$1 name=$2
	shift 2
	run "$@"
	if [[ $rc -eq $code ]]; then
		ok "$name"
	else
		not_ok "$name" "expected exit $code, got $rc: $*" "stdout: $out" "stderr: $err"
	fi
}

# expect_match REGEX NAME TEXT: TEXT matches the extended regex.
expect_match() {
	if grep -Eq -- "$1" <<<"$3"; then
		ok "$2"
	else
		not_ok "$2" "no match for /$1/ in:" "$3"
	fi
}

# json_get EXPR: evaluates a Python expression on the JSON document in $out
# (as `d`); prints the result.
json_get() {
	python3 -c "import json,sys; d=json.load(sys.stdin); print($1)" <<<"$out"
}

vmkctl() { "$VMK_BIN/vmkctl" --lab "$LAB_DIR" "$@"; }

# t_accel: guests run on KVM where /dev/kvm opens, else on vmx's software
# CPU (hostd passes its environment to vmx).
t_accel() {
	if [[ ! -c /dev/kvm ]] || ! exec 3<>/dev/kvm 2>/dev/null; then
		export VMK_ACCEL=soft
		echo "# no usable /dev/kvm: guests run on vmx's software CPU"
	fi
	exec 3>&- 2>/dev/null || true
}

# t_lab_up N: a lab of N hosts at $LAB_DIR, or the test file ends here;
# sets ELF (the micro guest) and shared (the shared datastore's path).
t_lab_up() {
	if ! "$LAB" up --hosts "$1" --dir "$LAB_DIR" >"$T_HOME/lab.log" 2>&1; then
		not_ok "lab up" "$(tail -n 30 "$T_HOME/lab.log")"
		t_done
		exit 1
	fi
	ok "lab up with $1 hosts"
	ELF=$(cd "$VMK_BIN/../guest" && pwd)/vmk-guest.elf
	shared=$LAB_DIR/shared
}

# Ends the test file: exit status reflects failures.
t_done() {
	echo "1..$t_n"
	[[ $t_failed -eq 0 ]]
}
