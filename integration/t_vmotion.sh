#!/usr/bin/env bash
# vMotion in a two-host lab sharing a datastore: a heartbeat guest moved
# A->B->A five times without a reset; a memory verifier and a fast dirtier
# (auto-converge) moved with nothing corrupted; the failures that must
# leave the VM running where it was (a wrong token, a cancel, a
# destination that dies); bad requests. Guests run on KVM where /dev/kvm
# works, else on vmx's software CPU.
set -u
LAB_DIR=/tmp/vmk-test-vmotion
. "$(dirname "$0")/lib.sh"

t_accel
t_lab_up 2

vm_field() { # HOST VM PYEXPR
	run vmkctl -s "$1" --formatter json vm get -n "$2"
	json_get "$3"
}
names_on() { # HOST: the VMs it lists, with their state
	run vmkctl -s "$1" --formatter json vm list
	json_get '" ".join(sorted(v["name"] + ":" + v["state"] for v in d))'
}
beats() { awk '/^hb [0-9]+$/ { print $2 }' "$shared/$1/serial.log"; }
unbroken() { awk 'NR > 1 && $1 != p + 1 { bad = 1 } { p = $1 } END { exit bad || NR < 2 }'; }
wait_line() { # FILE REGEX: bounded
	for _ in $(seq 300); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}

# ---- heartbeat: A -> B -> A, five times ----
expect 0 "vm create hb" vmkctl -s esx1 vm create -n hb -m 32 --kernel "$ELF" \
	--cmdline "heartbeat interval_ms=10" -d shared
expect 0 "vm power on hb" vmkctl -s esx1 vm power on -n hb
wait_line "$shared/hb/serial.log" "^hb 20$" && ok "hb beats" || not_ok "hb beats"
from=esx1 to=esx2 all=1 fields=1 same=1
for round in 1 2 3 4 5 6 7 8 9 10; do
	run vmkctl -s "$from" --formatter json vm migrate -n hb --dest "$to"
	if [[ $rc -ne 0 ]]; then
		all=0
		not_ok "migration $round $from -> $to" "$err"
		break
	fi
	[[ $(json_get '(d["vm"], d["source"], d["destination"], d["kind"], d["state"], d["error"],
		d["total_ms"] > 0, d["downtime_ms"] >= 0, d["transferred_bytes"] > 0, d["iterations"] >= 1,
		d["task_id"].startswith("task-"))') == \
		"('hb', '$from', '$to', 'live', 'success', None, True, True, True, True, True)" ]] || {
		fields=0
		not_ok "result of migration $round" "$out"
	}
	[[ $(names_on "$to") == "hb:poweredOn" && $(names_on "$from") == "" ]] || {
		same=0
		not_ok "vm list after migration $round" "$to: $(names_on "$to")" "$from: $(names_on "$from")"
	}
	n=$(beats hb | tail -n 1)
	wait_line "$shared/hb/serial.log" "^hb $((n + 5))$" || { all=0; not_ok "hb beats on $to after migration $round"; }
	t=$from from=$to to=$t
done
[[ $all == 1 ]] && ok "ten migrations, A->B->A five times" || true
[[ $fields == 1 ]] && ok "each result has the fields of CLI.md" || true
[[ $same == 1 ]] && ok "after each, exactly one host lists hb, poweredOn; the other none" || true
beats hb | unbroken && ok "the heartbeat sequence never reset or skipped" ||
	not_ok "heartbeat sequence" "$(awk 'NR > 1 && $1 != p + 1 { print "line " NR ": " p " then " $1 } { p = $1 }' \
		<(beats hb) | head -5)" "$(grep -n -v -E '^hb [0-9]+$' "$shared/hb/serial.log" | head -5)"
[[ $(vm_field esx1 hb 'd["lock_owner"]') == esx1 ]] && ok "the lock follows the VM" || not_ok "lock owner" "$out"

# a guest that prints all the time is paused in the middle of a line: the
# destination finishes that line, and the log has it once
expect 0 "vm create chatty" vmkctl -s esx1 vm create -n chatty -m 32 --kernel "$ELF" \
	--cmdline "heartbeat interval_ms=0" -d shared
expect 0 "power on chatty" vmkctl -s esx1 vm power on -n chatty
wait_line "$shared/chatty/serial.log" "^hb 2000$" || not_ok "chatty prints"
src=esx1 dst=esx2
for round in 1 2 3; do
	run vmkctl -s "$src" vm migrate -n chatty --dest "$dst"
	[[ $rc -eq 0 ]] || not_ok "chatty migration $round" "$err"
	t=$src src=$dst dst=$t
done
expect 0 "power off chatty" vmkctl -s esx2 vm power off -n chatty
bad=$(head -n -1 "$shared/chatty/serial.log" | awk '!/^hb [0-9]+$/ || $2 != NR - 1 { print "line " NR ": " $0; exit }')
[[ -z $bad ]] && ok "three migrations mid-line: every line once, in order ($(wc -l <"$shared/chatty/serial.log") lines)" ||
	not_ok "chatty log" "$bad"

# ---- failures leave the VM running where it was ----
pid=$(vm_field esx1 hb 'd["pid"]')
"$VMK_BIN/vmx" --control "$LAB_DIR/esx1/state/run/hb/vmx.sock" migrate 198.18.0.12 9 \
	"$(printf '0%.0s' $(seq 64))" >/dev/null 2>&1
sleep 1
run "$VMK_BIN/vmx" --control "$LAB_DIR/esx1/state/run/hb/vmx.sock" migrate-status
expect_match "phase=failed" "a migration to nowhere fails" "$out"
expect_match "state=running" "and the VM still runs" "$("$VMK_BIN/vmx" --control "$LAB_DIR/esx1/state/run/hb/vmx.sock" status)"
# a wrong token: the destination refuses the connection, once and for all
tok=$T_HOME/tok
mkdir -p "$T_HOME/w/vm" "$T_HOME/w/run"
printf 'vm = { name = "w"; uuid = "564d0000-0000-4000-8000-0000000000aa"; memory_mib = 32;\n vcpus = 1; kernel = "%s"; cmdline = "hello"; };\n' "$ELF" >"$T_HOME/w/vm/w.vmx"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tok"
"$LAB" exec --dir "$LAB_DIR" esx2 "$VMK_BIN/vmx" --run-dir "$T_HOME/w/run" --incoming 198.18.0.12 \
	--incoming-token-file "$tok" -c "$T_HOME/w/vm/w.vmx" >"$T_HOME/w/vmx.log" 2>&1 &
wpid=$!
for _ in $(seq 50); do
	port=$("$VMK_BIN/vmx" --control "$T_HOME/w/run/vmx.sock" status 2>/dev/null | sed -n 's/^incoming_port=//p')
	[[ -n $port && $port != 0 ]] && break
	sleep 0.1
done
"$VMK_BIN/vmx" --control "$LAB_DIR/esx1/state/run/hb/vmx.sock" migrate 198.18.0.12 "$port" \
	"$(printf 'f%.0s' $(seq 64))" >/dev/null 2>&1
sleep 1
run "$VMK_BIN/vmx" --control "$LAB_DIR/esx1/state/run/hb/vmx.sock" migrate-status
expect_match "token is wrong" "a wrong token is refused by the destination" "$out"
wait $wpid
wrc=$?
[[ $wrc -eq 106 ]] && ok "the incoming vmx gives up after the one connection (exit 106)" ||
	not_ok "incoming vmx after a wrong token" "exit $wrc" "$(cat "$T_HOME/w/vmx.log")"
expect_match "state=running" "the source VM still runs" "$("$VMK_BIN/vmx" --control "$LAB_DIR/esx1/state/run/hb/vmx.sock" status)"
run vmkctl -s esx2 --formatter json vm register --path shared:hb/hb.vmx
expect 5 "a registered, powered-off copy cannot be a target while hb runs elsewhere" \
	vmkctl -s esx2 vm power on -n hb
expect 0 "unregister it again" vmkctl -s esx2 vm unregister -n hb
# esx2 as older hardware: its hostd claims to lack nx; hb stays where it runs
"$LAB" kill-host esx2 --dir "$LAB_DIR" >/dev/null && VMK_CPU_HIDE=nx "$LAB" start-host esx2 --dir "$LAB_DIR" >/dev/null
expect 5 "a destination that lacks a CPU feature of the guest -> 5" vmkctl -s esx1 vm migrate -n hb --dest esx2
expect_match "esx2 cannot run VM hb.*lacks.*nx" "which names the host and the feature" "$err"
[[ $(names_on esx1) == "hb:poweredOn" && $(names_on esx2) != *hb* ]] && ok "hb runs on at esx1 and only there" ||
	not_ok "after the CPU refusal" "esx1: $(names_on esx1)" "esx2: $(names_on esx2)"
"$LAB" kill-host esx2 --dir "$LAB_DIR" >/dev/null && "$LAB" start-host esx2 --dir "$LAB_DIR" >/dev/null
expect 2 "vm migrate to itself -> 2" vmkctl -s esx1 vm migrate -n hb --dest esx1
expect 4 "vm migrate of an unknown VM -> 4" vmkctl -s esx1 vm migrate -n nosuch --dest esx2
expect 0 "vm create cold" vmkctl -s esx1 vm create -n cold -m 32 --kernel "$ELF" -d shared
expect 5 "a powered-off VM does not move live -> 5" vmkctl -s esx1 vm migrate -n cold --dest esx2
expect_match "poweredOff" "the message names its state" "$err"
expect 0 "vm create local" vmkctl -s esx1 vm create -n loc -m 32 --kernel "$ELF" \
	--cmdline "heartbeat interval_ms=50"
expect 0 "power on local" vmkctl -s esx1 vm power on -n loc
expect 4 "a VM on a datastore the destination does not see -> 4" \
	vmkctl -s esx1 vm migrate -n loc --dest esx2
expect_match "datastore1" "the message names the datastore" "$err"
[[ $(vm_field esx1 loc 'd["state"]') == poweredOn ]] && ok "and it still runs on esx1" || not_ok "loc state" "$out"
expect 0 "power off local" vmkctl -s esx1 vm power off -n loc

# the destination dies in the middle: the source resumes the VM
expect 0 "vm create big" vmkctl -s esx1 vm create -n big -m 128 --kernel "$ELF" \
	--cmdline "verify mib=48" -d shared
expect 0 "power on big" vmkctl -s esx1 vm power on -n big
wait_line "$shared/big/serial.log" "filled" && ok "big filled its memory" || not_ok "big fill"
vmkctl -s esx1 --formatter json vm migrate -n big --dest esx2 --max-bandwidth 8 >"$T_HOME/m.out" 2>"$T_HOME/m.err" &
mpid=$!
for _ in $(seq 100); do
	dpid=$(pgrep -f "big/big.vmx.*--incoming" | head -n 1)
	[[ -n $dpid ]] && break
	sleep 0.1
done
sleep 1
pkill -9 -f "big/big.vmx.*--incoming" 2>/dev/null
wait $mpid
mrc=$?
[[ $mrc -ne 0 ]] && ok "killing the destination fails the migration (exit $mrc)" || not_ok "migration with a dead destination" "$(cat "$T_HOME/m.out")"
expect_match "keeps running on esx1" "the error says where the VM runs" "$(cat "$T_HOME/m.err")"
for _ in $(seq 50); do [[ $(vm_field esx1 big 'd["state"]') == poweredOn ]] && break; sleep 0.1; done
[[ $(vm_field esx1 big 'd["state"]') == poweredOn ]] && ok "big runs on esx1 again" || not_ok "big state" "$out"
[[ $(names_on esx2) != *big* ]] && ok "esx2 does not keep big" || not_ok "esx2 list" "$(names_on esx2)"
n=$(grep -c "verify pass" "$shared/big/serial.log")
wait_line "$shared/big/serial.log" "verify pass $((n + 1)) OK" && ok "big goes on verifying" || not_ok "big after the failed migration"

# cancel: the task ends cancelled, the VM runs on
vmkctl -s esx1 --formatter json vm migrate -n big --dest esx2 --max-bandwidth 8 --async >"$T_HOME/a.out"
tid=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["task_id"])' <"$T_HOME/a.out")
sleep 1
expect 0 "task cancel of the migration" vmkctl -s esx1 task cancel -t "$tid"
run vmkctl -s esx1 --formatter json task get -t "$tid" --wait --wait-timeout 60
[[ $rc -eq 7 && $out == *'"name":"cancelled"'* ]] && ok "the migration task ends cancelled (exit 7)" ||
	not_ok "cancelled task" "exit $rc" "$out"
for _ in $(seq 50); do [[ $(vm_field esx1 big 'd["state"]') == poweredOn ]] && break; sleep 0.1; done
[[ $(vm_field esx1 big 'd["state"]') == poweredOn ]] && ok "after the cancel big runs on esx1" || not_ok "big after cancel" "$out"

# ---- memory: the verifier moves, nothing is corrupted ----
expect 0 "migrate the verifier to esx2" vmkctl -s esx1 --formatter json vm migrate -n big --dest esx2
[[ $(json_get 'd["transferred_bytes"] > 48 * 2**20') == True ]] && ok "its working set crossed the link" || not_ok "bytes" "$out"
n=$(grep -c "verify pass" "$shared/big/serial.log")
wait_line "$shared/big/serial.log" "verify pass $((n + 1)) OK" && ok "big verifies a full pass on esx2" ||
	not_ok "verify after migration" "$(tail -3 "$shared/big/serial.log")"
! grep -q CORRUPT "$shared/big/serial.log" && ok "no CORRUPT" || not_ok "corruption" "$(grep CORRUPT "$shared/big/serial.log")"
! grep -q "page copies checked" "$shared/big/vmx.log" && ok "by default the pages go without checksums of their own" ||
	not_ok "default RAMD" "$(grep migration "$shared/big/vmx.log" | tail -5)"
# back over four parallel streams, every page checked end to end
expect 0 "migrate the verifier back to esx1 over 4 streams" vmkctl -s esx2 --formatter json vm migrate -n big \
	--dest esx1 --streams 4 --verify-pages
grep -q "migration: 4 streams" "$shared/big/vmx.log" && ok "the destination took 4 streams" ||
	not_ok "4 streams" "$(grep migration "$shared/big/vmx.log" | tail -3)"
checked=$(grep -o "migration: [0-9]* page copies checked" "$shared/big/vmx.log" | tail -1 | awk '{print $2}')
[[ ${checked:-0} -gt $((48 * 256)) ]] && ok "with --verify-pages the destination checked $checked page copies" ||
	not_ok "--verify-pages" "$(grep migration "$shared/big/vmx.log" | tail -5)"
n=$(grep -c "verify pass" "$shared/big/serial.log")
wait_line "$shared/big/serial.log" "verify pass $((n + 1)) OK" && ok "big verifies a full pass on esx1" ||
	not_ok "verify after the 4-stream migration" "$(tail -3 "$shared/big/serial.log")"
! grep -q CORRUPT "$shared/big/serial.log" && ok "still no CORRUPT" || not_ok "corruption" "$(grep CORRUPT "$shared/big/serial.log")"
expect 2 "--streams 9 -> 2" vmkctl -s esx1 vm migrate -n big --dest esx2 --streams 9
expect 2 "--verify-pages with --cold -> 2" vmkctl -s esx1 vm migrate -n big --dest esx2 --cold --verify-pages
expect 0 "power off big" vmkctl -s esx1 vm power off -n big

# ---- a dirtier faster than the link: auto-converge ----
expect 0 "vm create dirty" vmkctl -s esx1 vm create -n dirty -m 64 --kernel "$ELF" \
	--cmdline "dirty mib=16 rate=64" -d shared
expect 0 "power on dirty" vmkctl -s esx1 vm power on -n dirty
wait_line "$shared/dirty/serial.log" "^dirty [0-9]+$" && ok "dirty runs" || not_ok "dirty start"
# 64 MiB/s of dirt over a 24 MiB/s link: only holding the vCPUs lets it converge
run vmkctl -s esx1 --formatter json vm migrate -n dirty --dest esx2 --max-bandwidth 24 \
	--downtime-ms 100 --converge-timeout 90
[[ $rc -eq 0 ]] && ok "the dirtier migrates" || not_ok "dirty migration" "$err"
[[ $(json_get 'd["throttle_pct"] > 0') == True ]] && ok "auto-converge held the vCPUs ($(json_get 'd["throttle_pct"]')%)" ||
	not_ok "auto-converge" "$out"
[[ $(names_on esx2) == *dirty:poweredOn* ]] && ok "dirty runs on esx2" || not_ok "dirty on esx2" "$(names_on esx2)"
# lz4: its pages compress well; the same moves there and back, plain and compressed
run vmkctl -s esx2 --formatter json vm migrate -n dirty --dest esx1
plain=$(json_get 'd["transferred_bytes"]')
run vmkctl -s esx1 --formatter json vm migrate -n dirty --dest esx2 --compress
lz=$(json_get 'd["transferred_bytes"]')
[[ $rc -eq 0 && $lz =~ ^[0-9]+$ && $plain =~ ^[0-9]+$ && $((lz * 4)) -lt $plain ]] &&
	ok "with --compress it sends under a quarter of the bytes ($((lz >> 10)) KiB against $((plain >> 10)) KiB)" ||
	not_ok "--compress" "rc=$rc plain=$plain lz4=$lz" "$err"
n=$(grep -c "^dirty [0-9]" "$shared/dirty/serial.log")
wait_line "$shared/dirty/serial.log" "^dirty [0-9]+$" && sleep 1.2 &&
	[[ $(grep -c "^dirty [0-9]" "$shared/dirty/serial.log") -gt $n ]] && ok "and the guest runs on on esx2" ||
	not_ok "dirty after the compressed migration" "$(tail -3 "$shared/dirty/serial.log")"
expect 0 "power off dirty" vmkctl -s esx2 vm power off -n dirty
# ---- local storage: the disks move too (--storage) ----
ds1=$LAB_DIR/esx1/datastore1 ds2=$LAB_DIR/esx2/datastore1
expect 0 "vm create dk on esx1's local datastore, with a 16 MiB disk" vmkctl -s esx1 vm create -n dk \
	-m 64 --kernel "$ELF" --cmdline "disk blocks=512 passes=0" --disk 16
expect 0 "power on dk" vmkctl -s esx1 vm power on -n dk
wait_line "$ds1/dk/serial.log" "^disk pass 2 OK" && ok "dk writes and verifies its disk" || not_ok "dk passes"
expect 4 "without --storage it cannot move (esx2 does not see datastore1 of esx1) -> 4" \
	vmkctl -s esx1 vm migrate -n dk --dest esx2
run vmkctl -s esx1 --formatter json vm migrate -n dk --dest esx2 --storage datastore1
[[ $rc -eq 0 && $(json_get 'd["state"]') == success ]] && ok "migrate dk with its storage" || not_ok "storage migration" "$err" "$out"
[[ $(json_get 'd["transferred_bytes"] > 2**20') == True ]] && ok "its disk data crossed the link" || not_ok "bytes" "$out"
[[ ! -e $ds1/dk ]] && ok "the source's directory is gone" || not_ok "source dir left" "$(ls "$ds1/dk")"
[[ -s $ds2/dk/disk0.img && -f $ds2/dk/dk.vmx ]] && ok "the VM lives in esx2's datastore1 now" || not_ok "dest dir" "$(ls "$ds2/dk" 2>&1)"
grep -q "^disk pass 1 OK" "$ds2/dk/serial.log" && ok "its serial log moved along (earlier lines are there)" ||
	not_ok "serial log moved" "$(head -3 "$ds2/dk/serial.log")"
n=$(grep -c "^disk pass" "$ds2/dk/serial.log")
wait_line "$ds2/dk/serial.log" "^disk pass $((n + 2)) OK" &&
	ok "on esx2 every block written before and during the migration verifies, pass after pass" ||
	not_ok "disk passes on esx2" "$(tail -3 "$ds2/dk/serial.log")"
! grep -q CORRUPT "$ds2/dk/serial.log" && ok "no disk CORRUPT" || not_ok "disk corruption" "$(grep CORRUPT "$ds2/dk/serial.log")"
[[ $(names_on esx2) == *dk:poweredOn* && $(names_on esx1) != *dk* ]] && ok "esx2 lists dk, esx1 no longer" ||
	not_ok "lists after storage migration" "esx1: $(names_on esx1)" "esx2: $(names_on esx2)"
expect 0 "vm create another dk on esx1 (shared datastore)" vmkctl -s esx1 vm create -n dk -m 32 \
	--kernel "$ELF" -d shared
expect 5 "moving dk to esx1, which has another dk -> 5" \
	vmkctl -s esx2 vm migrate -n dk --dest esx1 --storage shared
[[ $(names_on esx2) == *dk:poweredOn* ]] && ok "dk still runs on esx2" || not_ok "dk after the refusal" "$(names_on esx2)"
expect 0 "destroy esx1's other dk" vmkctl -s esx1 vm destroy -n dk
expect 0 "dk moves back to esx1's datastore1 with its storage" \
	vmkctl -s esx2 vm migrate -n dk --dest esx1 --storage datastore1
[[ ! -e $ds2/dk && -s $ds1/dk/disk0.img ]] && ok "and its files with it" || not_ok "files after the move back"
expect 0 "power off dk" vmkctl -s esx1 vm power off -n dk
# ---- the per-host limit: with host.max_migrations = 1 the second waits ----
# (set in esx1's host.cfg; hostd restarts and re-attaches, the VMs run on)
sed -i 's/^  log_level = "info";$/  log_level = "info";\n  max_migrations = 1;/' "$LAB_DIR/esx1/host.cfg"
"$LAB" kill-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
"$LAB" start-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
for i in 1 2; do
	vmkctl -s esx1 vm create -n "q$i" -m 32 --kernel "$ELF" --cmdline "dirty mib=16 rate=1" -d shared >/dev/null &&
		vmkctl -s esx1 vm power on -n "q$i" >/dev/null || not_ok "q$i up"
	wait_line "$shared/q$i/serial.log" "^dirty " || not_ok "q$i dirties"
done
run vmkctl -s esx1 --formatter json vm migrate -n q1 --dest esx2 --max-bandwidth 1 --async
t1=$(json_get 'd["task_id"]')
run vmkctl -s esx1 --formatter json vm migrate -n q2 --dest esx2 --async
t2=$(json_get 'd["task_id"]')
sleep 1
run vmkctl -s esx1 --formatter json task get -t "$t2"
[[ $(json_get 'd["state"] == "running" and d["phase"].startswith("queued")') == True ]] &&
	ok "with one migration running and a limit of 1, the next one queues" || not_ok "queued migration" "$out"
expect 0 "cancel the running one" vmkctl -s esx1 task cancel -t "$t1"
run vmkctl -s esx1 --formatter json task get -t "$t2" --wait --wait-timeout 120
[[ $rc -eq 0 && $(json_get 'd["state"]') == success ]] && ok "the queued one runs then, and succeeds" ||
	not_ok "the queued migration" "$out" "$err"
run vmkctl -s esx1 --formatter json task get -t "$t1" --wait --wait-timeout 60
[[ $rc -eq 7 ]] && ok "the cancelled one ends cancelled" || not_ok "cancelled" "exit $rc" "$out"
[[ $(names_on esx1) == *q1:poweredOn* && $(names_on esx2) == *q2:poweredOn* ]] &&
	ok "q1 runs on esx1, q2 on esx2" || not_ok "q placement" "esx1: $(names_on esx1)" "esx2: $(names_on esx2)"
grep -q "AddressSanitizer\|runtime error" "$LAB_DIR"/esx*/hostd.out && not_ok "hostd.out is clean" ||
	ok "hostd.out is clean"
t_done
