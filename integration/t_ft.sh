#!/usr/bin/env bash
# Fault tolerance between two vmx on this host (replica/): a heartbeat
# guest protected by 10 ms checkpoints; the primary killed: the secondary
# goes live and the serial log has every line once, in order; the primary
# frozen past the detection time (a partition): the secondary wins the
# generation record, the primary stops its copy when it wakes, nothing is
# said twice; ft-stop: the secondary ends without going live; a wrong
# token. Both vmx use the same .vmx directory, as two hosts would use the
# shared datastore (serial log and generation record). Guests run on KVM
# where /dev/kvm opens, else on vmx's software CPU (its checkpoints work
# the same way; the disk guest only takes longer).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
VMK_BIN=${VMK_BIN:-$top/build/bin}
VMX=$VMK_BIN/vmx
ELF=${VMK_GUEST_ELF:-$VMK_BIN/../guest/vmk-guest.elf}
tmp=$(mktemp -d /tmp/vmk-test-ft.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; printf '#   %s\n' "$@"; }

if [[ ! -c /dev/kvm ]] || ! exec 3<>/dev/kvm 2>/dev/null; then
	export VMK_ACCEL=soft
	echo "# no usable /dev/kvm: guests run on vmx's software CPU"
fi
exec 3>&- 2>/dev/null || true

token=$(printf 'a%.0s' $(seq 64))
printf '%s\n' "$token" >"$tmp/token"

# setup NAME: a heartbeat guest in $tmp/NAME, no log yet
setup() {
	mkdir -p "$tmp/$1" "$tmp/$1/a" "$tmp/$1/b"
	cat >"$tmp/$1/$1.vmx" <<EOC
vm = { name = "$1"; uuid = "564d0000-0000-4000-8000-0000000000f$2"; memory_mib = 64;
       vcpus = 1; kernel = "$ELF"; cmdline = "heartbeat interval_ms=5"; };
EOC
}
ctl() { "$VMX" --control "$1" "${@:2}" 2>&1; }
field() { ctl "$1" "$2" | sed -n "s/^$3=//p"; }
wait_grep() { # FILE REGEX [TENTHS]
	for _ in $(seq "${3:-100}"); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
# wait_exit PID [TENTHS]: its exit status, or 124 after TENTHS tenths of a
# second, 100 by default (then it is killed)
wait_exit() {
	for _ in $(seq "${2:-100}"); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$1" 2>/dev/null && { kill -9 "$1"; wait "$1" 2>/dev/null; return 124; }
	wait "$1"
}
# the heartbeat numbers of a log: every line once, in order
unbroken() { awk '$1 == "hb" { if (seen && $2 != p + 1) bad = 1; p = $2; seen = 1 } END { exit bad || !seen }' "$1"; }
breaks() { awk '$1 == "hb" { if (seen && $2 != p + 1) print "line " NR ": " p " then " $2; p = $2; seen = 1 }' "$1" | head -5; }

# secondary VMX_FILE DIR [VMX_OPTION...]: an FT secondary of that .vmx,
# run from DIR/b (output in DIR/b.out); sets spid and sport
secondary() {
	mkdir -p "$2/b"
	"$VMX" -c "$1" --run-dir "$2/b" --incoming 127.0.0.1 --incoming-token-file "$tmp/token" \
		--ft-secondary "${@:3}" >"$2/b.out" 2>&1 &
	spid=$!
	pids+=("$spid")
	sport=
	for _ in $(seq 50); do
		sport=$(field "$2/b/vmx.sock" status incoming_port)
		[[ -n $sport && $sport != 0 ]] && break
		sleep 0.1
	done
}

# start NAME: secondary, then primary, then ft-start; sets sport, ppid, spid
start() {
	local d=$tmp/$1
	secondary "$d/$1.vmx" "$d"
	"$VMX" -c "$d/$1.vmx" --run-dir "$d/a" >"$d/a.out" 2>&1 &
	ppid=$!
	pids+=("$ppid")
	wait_grep "$d/serial.log" "^hb 20$"
}

protected() { # SOCK: protected, with at least 20 epochs acknowledged
	for _ in $(seq 100); do
		[[ $(field "$1" ft-status phase) == protected && $(field "$1" ft-status acked) -ge 20 ]] &&
			return 0
		sleep 0.1
	done
	return 1
}

# protect NAME N [DETECT_MS]: setup, start and ft-start; d is the VM's directory
protect() {
	setup "$1" "$2"
	start "$1"
	d=$tmp/$1
	ctl "$d/a/vmx.sock" ft-start 127.0.0.1 "$sport" "$token" 10 ${3:-} >/dev/null
	protected "$d/a/vmx.sock" || not_ok "protection ($1)" "$(ctl "$d/a/vmx.sock" ft-status)"
}

# ---- the primary killed ----
setup kill 1
start kill
d=$tmp/kill
out=$(ctl "$d/a/vmx.sock" ft-start 127.0.0.1 "$sport" "$token" 10)
[[ $? -eq 0 ]] && ok "ft-start accepted" || not_ok "ft-start" "$out"
if protected "$d/a/vmx.sock"; then
	ok "protected: epochs acknowledged ($(field "$d/a/vmx.sock" ft-status acked), pause max $(field "$d/a/vmx.sock" ft-status pause_us_max) us)"
else
	not_ok "protection" "$(ctl "$d/a/vmx.sock" ft-status)" "$(cat "$d/b.out")"
fi
grep -q '^generation=1$' "$d/kill.ftgen" 2>/dev/null && ok "the generation record is at 1" ||
	not_ok "generation record" "$(cat "$d/kill.ftgen" 2>&1)"
before=$(grep -c '^hb ' "$d/serial.log")
kill -9 "$ppid"
if wait_grep "$d/b.out" "going live" 50; then
	ok "the secondary went live after the primary was killed"
else
	not_ok "go-live" "$(cat "$d/b.out")"
fi
for _ in $(seq 50); do (($(grep -c '^hb ' "$d/serial.log") > before + 100)) && break; sleep 0.1; done
after=$(grep -c '^hb ' "$d/serial.log")
((after > before + 100)) && ok "the guest runs on at the secondary ($before -> $after lines)" ||
	not_ok "the guest runs on" "$before -> $after lines" "$(cat "$d/b.out")"
unbroken "$d/serial.log" && ok "every heartbeat once, in order, across the failover" ||
	not_ok "heartbeat sequence across the failover" "$(breaks "$d/serial.log")"
grep -q '^generation=2$' "$d/kill.ftgen" && ok "the secondary took the record (generation 2)" ||
	not_ok "record after the failover" "$(cat "$d/kill.ftgen")"
out=$(ctl "$d/b/vmx.sock" ft-stop)
[[ $? -ne 0 ]] && grep -q "taken over" <<<"$out" && kill -0 "$spid" 2>/dev/null &&
	ok "ft-stop of the secondary that went live: refused, it runs on" || not_ok "ft-stop after go-live" "$out"
kill -9 "$spid" 2>/dev/null

# ---- ft-stop of a waiting secondary: it ends at once, without the record ----
setup standby 9
secondary "$tmp/standby/standby.vmx" "$tmp/standby"
out=$(ctl "$tmp/standby/b/vmx.sock" ft-stop)
rc=0
wait_exit "$spid" || rc=$?
[[ $rc -eq 0 && ! -e $tmp/standby/standby.ftgen ]] &&
	ok "ft-stop of a secondary waiting for its primary: it ends (status 0), the record untouched" ||
	not_ok "ft-stop of a waiting secondary" "exit $rc" "$out" "$(cat "$tmp/standby/b.out")"

# ---- the primary dies with acknowledged output it never let out ----
# (VMX_FT_FAULT=no-release: every acknowledgement arrives and nothing is
# written, as if the primary died right after each one)
VMX_FT_FAULT=no-release protect late 5
held=$(grep -c '^hb ' "$d/serial.log")
sleep 0.3
(($(grep -c '^hb ' "$d/serial.log") == held)) && ok "output waits while nothing is let out" ||
	not_ok "held output" "$held -> $(grep -c '^hb ' "$d/serial.log")"
kill -9 "$ppid"
wait_grep "$d/b.out" "going live" 50 || not_ok "go-live (late)" "$(cat "$d/b.out")"
wait_grep "$d/b.out" "bytes of output the primary had not let out" 20 &&
	ok "the secondary wrote the output the primary had not let out" ||
	not_ok "catch-up of the output" "$(cat "$d/b.out")"
sleep 0.3
unbroken "$d/serial.log" && (($(grep -c '^hb ' "$d/serial.log") > held + 50)) &&
	ok "every heartbeat once, in order, none lost with the primary" ||
	not_ok "heartbeat sequence after a late death" "$(breaks "$d/serial.log")"
kill -9 "$spid" 2>/dev/null

# ---- a partition: the primary frozen past the detection time ----
protect part 2
kill -STOP "$ppid"
wait_grep "$d/b.out" "going live" 50 && ok "the secondary went live while the primary was silent" ||
	not_ok "go-live on silence" "$(cat "$d/b.out")"
sleep 0.3
kill -CONT "$ppid"
rc=0
wait_exit "$ppid" || rc=$?
[[ $rc -eq 107 ]] && ok "the woken primary lost the record and stopped its copy (exit 107)" ||
	not_ok "primary after the partition" "exit $rc" "$(tail -3 "$d/a.out")"
grep -q "lost the generation record" "$d/a.out" && ok "the primary says why it stopped" ||
	not_ok "the primary's reason" "$(tail -5 "$d/a.out")"
sleep 0.5
unbroken "$d/serial.log" && ok "nothing said twice or skipped across the partition" ||
	not_ok "heartbeat sequence across the partition" "$(breaks "$d/serial.log")"
kill -9 "$spid" 2>/dev/null

# ---- the secondary killed: the primary wins the record and runs on alone ----
protect alone 6
kill -9 "$spid"
for _ in $(seq 50); do [[ $(field "$d/a/vmx.sock" ft-status phase) == alone ]] && break; sleep 0.1; done
st=$(ctl "$d/a/vmx.sock" ft-status)
grep -q "phase=alone" <<<"$st" && grep -q "^generation=2$" "$d/alone.ftgen" &&
	[[ $(field "$d/a/vmx.sock" status state) == running ]] &&
	ok "the secondary killed: the primary took the record and runs on alone" ||
	not_ok "primary after losing its secondary" "$st" "$(cat "$d/alone.ftgen")"
c1=$(grep -c '^hb ' "$d/serial.log")
sleep 0.3
(($(grep -c '^hb ' "$d/serial.log") > c1 + 20)) && unbroken "$d/serial.log" &&
	ok "its output flows again, every line once" ||
	not_ok "output after the secondary was lost" "$c1" "$(breaks "$d/serial.log")"
kill -9 "$ppid" 2>/dev/null

# ---- the secondary frozen, then woken: the primary keeps the VM ----
protect cold 7
kill -STOP "$spid"
for _ in $(seq 50); do [[ $(field "$d/a/vmx.sock" ft-status phase) == alone ]] && break; sleep 0.1; done
kill -CONT "$spid"
rc=0
wait_exit "$spid" || rc=$?
[[ $(field "$d/a/vmx.sock" ft-status phase) == alone && $rc -ne 0 && $rc -ne 124 ]] &&
	grep -q "took over first" "$d/b.out" && ! grep -q "going live" "$d/b.out" &&
	ok "a frozen secondary, woken, finds the record taken and ends without going live" ||
	not_ok "secondary after a partition" "exit $rc" "$(ctl "$d/a/vmx.sock" ft-status)" "$(cat "$d/b.out")"
sleep 0.3
unbroken "$d/serial.log" && ok "one copy ran: every line once" ||
	not_ok "heartbeat sequence (frozen secondary)" "$(breaks "$d/serial.log")"
kill -9 "$ppid" 2>/dev/null

# ---- a longer detection time: a primary silent for less keeps the VM ----
protect patient 7 2000
[[ $(field "$d/a/vmx.sock" ft-status detect_ms) == 2000 && $(field "$d/b/vmx.sock" ft-status detect_ms) == 2000 ]] &&
	ok "ft-start with a detection time of 2000 ms: both sides use it" ||
	not_ok "detect_ms" "$(ctl "$d/a/vmx.sock" ft-status)" "$(ctl "$d/b/vmx.sock" ft-status)"
kill -STOP "$ppid"
sleep 0.6 # silent for far more than the default 130 ms
kill -CONT "$ppid"
c1=$(grep -c '^hb ' "$d/serial.log")
wait_grep "$d/serial.log" "^hb $((c1 + 50))$" 50
! grep -q "going live" "$d/b.out" && [[ $(field "$d/a/vmx.sock" ft-status phase) == protected ]] &&
	unbroken "$d/serial.log" &&
	ok "the primary frozen for 600 ms: the secondary waits (2000 ms), protection goes on" ||
	not_ok "a longer detection time" "$(ctl "$d/a/vmx.sock" ft-status)" "$(tail -3 "$d/b.out")"
kill -9 "$ppid" "$spid" 2>/dev/null

# ---- ft-stop: the secondary ends, the primary runs on unprotected ----
protect stop 3
ctl "$d/a/vmx.sock" ft-stop >/dev/null
wait_exit "$spid"
rc=$?
[[ $rc -eq 0 ]] && grep -q "ended fault tolerance" "$d/b.out" &&
	! grep -q "going live" "$d/b.out" && ok "ft-stop: the secondary ended without going live" ||
	not_ok "ft-stop" "exit $rc" "$(cat "$d/b.out")"
[[ $(field "$d/a/vmx.sock" ft-status phase) == off && $(field "$d/a/vmx.sock" status state) == running ]] &&
	ok "the primary runs on, unprotected" || not_ok "primary after ft-stop" "$(ctl "$d/a/vmx.sock" ft-status)"
c1=$(grep -c '^hb ' "$d/serial.log")
sleep 0.3
c2=$(grep -c '^hb ' "$d/serial.log")
((c2 > c1)) && unbroken "$d/serial.log" && ok "its output flows at once again" ||
	not_ok "output after ft-stop" "$c1 -> $c2" "$(breaks "$d/serial.log")"
kill -9 "$ppid" 2>/dev/null

# ---- a disk guest: its writes reach the secondary's own copy with the
# epochs; the primary killed, the secondary's copy has every write the
# guest saw done ----
setup disk 5
d=$tmp/disk
sed -i 's/cmdline = "[^"]*"/cmdline = "disk blocks=256 passes=60"/' "$d/disk.vmx"
printf 'disks = ( { path = "disk0.img"; } );\n' >>"$d/disk.vmx"
truncate -s 16M "$d/disk0.img"
mkdir -p "$d/ft"
truncate -s 16M "$d/ft/disk0.img"
out=$("$VMX" -c "$d/disk.vmx" --run-dir "$d/x" --incoming 127.0.0.1 --incoming-token-file \
	"$tmp/token" --ft-secondary --disk a.img --disk b.img 2>&1)
[[ $? -eq 2 ]] && grep -q "2 --disk options for the 1 disks" <<<"$out" &&
	ok "--disk once per disk, else refused" || not_ok "--disk count" "$out"
out=$("$VMX" -c "$d/disk.vmx" --run-dir "$d/x" --incoming 127.0.0.1 --incoming-token-file \
	"$tmp/token" --ft-secondary 2>&1)
[[ $? -eq 2 ]] && grep -q "needs its own copy of each writable disk" <<<"$out" &&
	ok "a secondary without --disk for a writable disk: refused (it would write the primary's)" ||
	not_ok "--ft-secondary without --disk" "$out"
secondary "$d/disk.vmx" "$d" --disk "$d/ft/disk0.img"
"$VMX" -c "$d/disk.vmx" --run-dir "$d/a" >"$d/a.out" 2>&1 &
ppid=$!
pids+=("$ppid")
wait_grep "$d/serial.log" "^disk pass 2 OK$"
ctl "$d/a/vmx.sock" ft-start 127.0.0.1 "$sport" "$token" 10 >/dev/null
protected "$d/a/vmx.sock" && ok "a VM with a disk is protected" ||
	not_ok "protection of a disk VM" "$(ctl "$d/a/vmx.sock" ft-status)" "$(cat "$d/b.out")"
p0=$(grep -c "^disk pass" "$d/serial.log")
wait_grep "$d/serial.log" "^disk pass $((p0 + 3)) OK$" ||
	not_ok "disk passes while protected" "$(tail -3 "$d/serial.log")"
kill -9 "$ppid"
wait_grep "$d/b.out" "going live" 50 && ok "the primary killed mid-pass: the secondary went live" ||
	not_ok "disk VM go-live" "$(cat "$d/b.out")"
# the guest goes on from the last epoch: it reads back what it wrote
# before, which only the replicated writes hold (60 passes take about
# 14 s on the software CPU)
wait_exit "$spid" 900
rc=$?
last=$(grep "^disk pass" "$d/serial.log" | tail -1)
[[ $rc -eq 0 && $last == "disk pass 60 OK" ]] && ! grep -q CORRUPT "$d/serial.log" &&
	ok "it finished its 60 passes on the secondary's disk, no CORRUPT" ||
	not_ok "disk passes after the failover" "exit $rc, $last" "$(grep CORRUPT "$d/serial.log")" "$(tail -5 "$d/b.out")"
grep -q 'path = "ft/disk0.img"' "$d/disk.vmx" && ok "the .vmx names the secondary's copy now" ||
	not_ok ".vmx after the go-live" "$(grep -A1 disks "$d/disk.vmx")"
# the copy alone, booted again: every block holds the last pass
sed -i 's/cmdline = "[^"]*"/cmdline = "disk verify-only=1 pass=60"/' "$d/disk.vmx"
: >"$d/serial.log"
mkdir -p "$d/v"
"$VMX" -c "$d/disk.vmx" --run-dir "$d/v" >"$d/v.out" 2>&1
rc=$?
[[ $rc -eq 0 ]] && grep -q "^disk pass 60 OK" "$d/serial.log" &&
	ok "the secondary's disk file verifies on its own (pass 60 in every block)" ||
	not_ok "verify the secondary's copy" "exit $rc" "$(cat "$d/serial.log" "$d/v.out" | tail -5)"

# ---- bad input ----
setup bad 4
start bad
d=$tmp/bad
out=$(ctl "$d/a/vmx.sock" ft-start 127.0.0.1 "$sport" "$(printf 'b%.0s' $(seq 64))" 10)
for _ in $(seq 50); do [[ $(field "$d/a/vmx.sock" ft-status phase) == failed ]] && break; sleep 0.1; done
st=$(ctl "$d/a/vmx.sock" ft-status)
grep -q "phase=failed" <<<"$st" && grep -q "refused" <<<"$st" &&
	ok "a wrong token: refused, the primary says so" || not_ok "wrong token" "$st" "$(cat "$d/b.out")"
wait_exit "$spid"
grep -q "no valid token" "$d/b.out" && ok "the secondary refused the token and ended" ||
	not_ok "secondary on a wrong token" "$(cat "$d/b.out")"
c1=$(grep -c '^hb ' "$d/serial.log")
sleep 0.3
(($(grep -c '^hb ' "$d/serial.log") > c1)) && ok "the refused primary's output flows" ||
	not_ok "output after a refused ft-start" "$(ctl "$d/a/vmx.sock" ft-status)"
# a secondary that sees another generation record (not the same datastore)
mkdir -p "$tmp/other"
cp "$d/bad.vmx" "$tmp/other/bad.vmx"
secondary "$tmp/other/bad.vmx" "$tmp/other"
opid=$spid
ctl "$d/a/vmx.sock" ft-start 127.0.0.1 "$sport" "$token" 10 >/dev/null
for _ in $(seq 50); do [[ $(field "$d/a/vmx.sock" ft-status phase) == failed ]] && break; sleep 0.1; done
st=$(ctl "$d/a/vmx.sock" ft-status)
wait_exit "$opid"
grep -q "phase=failed" <<<"$st" && grep -q "share the VM's datastore" <<<"$st" &&
	grep -q "do not share the VM's datastore" "$tmp/other/b.out" &&
	ok "a secondary without the same generation record is refused on both sides" ||
	not_ok "record on another datastore" "$st" "$(cat "$tmp/other/b.out")"
# a peer that accepts and never answers: ft-stop ends the handshake (it
# would wait 10 s)
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True)
c, _ = s.accept(); time.sleep(30)' >"$tmp/mute.port" &
mute=$!
pids+=("$mute")
for _ in $(seq 50); do [[ -s $tmp/mute.port ]] && break; sleep 0.1; done
ctl "$d/a/vmx.sock" ft-start 127.0.0.1 "$(cat "$tmp/mute.port")" "$token" 10 >/dev/null
sleep 0.3
t0=$(date +%s%N)
ctl "$d/a/vmx.sock" ft-stop >/dev/null
t1=$(date +%s%N)
st=$(ctl "$d/a/vmx.sock" ft-status)
(((t1 - t0) / 1000000 < 5000)) && grep -q "phase=failed" <<<"$st" &&
	[[ $(field "$d/a/vmx.sock" status state) == running ]] &&
	ok "ft-stop ends a handshake with a silent peer at once; the VM runs on" ||
	not_ok "ft-stop during the handshake" "$(((t1 - t0) / 1000000)) ms" "$st"
kill -9 "$mute" 2>/dev/null
out=$(ctl "$d/a/vmx.sock" ft-start 127.0.0.1 1 "$token" 5000)
[[ $? -eq 2 ]] && grep -q "at most 1000" <<<"$out" && ok "an epoch over 1000 ms refused" ||
	not_ok "epoch bound" "$out"
out=$(ctl "$d/a/vmx.sock" ft-start 127.0.0.1 1 "$token" 10 25)
[[ $? -eq 2 ]] && grep -q "between 30" <<<"$out" && ok "a detection time under 2 epochs + 10 ms refused" ||
	not_ok "detect bound" "$out"
out=$(ctl "$d/a/vmx.sock" ft-start 127.0.0.1 1 short 10)
[[ $? -eq 2 ]] && grep -q "64-digit token" <<<"$out" && ok "a short token refused" || not_ok "short token" "$out"
out=$("$VMX" -c "$d/bad.vmx" --ft-secondary 2>&1)
[[ $? -eq 2 ]] && grep -q "needs --incoming" <<<"$out" && ok "--ft-secondary alone refused" ||
	not_ok "--ft-secondary alone" "$out"
kill -9 "$ppid" 2>/dev/null

echo "1..$n"
exit $((failed > 0))
