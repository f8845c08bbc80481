#!/usr/bin/env bash
# VM lifecycle through vmkctl in a two-host lab: power on/off, console,
# suspend/resume, reset, destroy; the datastore lock between two hosts;
# VMs surviving a hostd crash; a killed vmx shown as crashed. Guests run on
# KVM where /dev/kvm works, else on vmx's software CPU.
set -u
LAB_DIR=/tmp/vmk-test-lifecycle
. "$(dirname "$0")/lib.sh"

t_accel
t_lab_up 2

# heartbeats HOST VM: the sequence numbers in the VM's console, one per line
heartbeats() {
	vmkctl -s "$1" vm console -n "$2" --lines 100000 2>/dev/null | awk '/^hb [0-9]+$/ { print $2 }'
}
# unbroken: the numbers go up by one from the first to the last
unbroken() { awk 'NR > 1 && $1 != p + 1 { bad = 1 } { p = $1 } END { exit bad || NR < 2 }'; }
# wait_hb HOST VM N: until the console shows heartbeat N (bounded)
wait_hb() {
	for _ in $(seq 200); do
		[[ $(heartbeats "$1" "$2" | tail -n 1) -ge $3 ]] 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}
vm_field() { # HOST VM PYEXPR
	run vmkctl -s "$1" --formatter json vm get -n "$2"
	json_get "$3"
}

# ---- the whole lifecycle of one VM ----
expect 0 "vm create hb on the shared datastore" vmkctl -s esx1 vm create -n hb -m 32 \
	--kernel "$ELF" --cmdline "heartbeat interval_ms=20" -d shared
expect 0 "vm power on" vmkctl -s esx1 --formatter json vm power on -n hb
[[ $(json_get '(d["op"], d["target"], d["state"], d["progress"], d["exit_code"])') == \
	"('vm.power.on', 'hb', 'success', 100, 0)" ]] && ok "power on answers with its task, field by field" ||
	not_ok "power on task" "$out"
[[ $(json_get 'd["task_id"].startswith("task-")') == True ]] && ok "the task has an id" || not_ok "task id" "$out"
[[ $(vm_field esx1 hb '(d["state"], d["host"], d["pid"] > 0, d["lock_owner"])') == \
	"('poweredOn', 'esx1', True, 'esx1')" ]] && ok "vm get: poweredOn, a vmx pid, esx1 holds the lock" ||
	not_ok "vm get after power on" "$out"
pid=$(vm_field esx1 hb 'd["pid"]')
[[ -f $shared/hb/.vmk.lck ]] && grep -q "^pid=$pid$" "$shared/hb/.vmk.lck" &&
	ok "the lock file names the vmx" || not_ok "lock file" "$(cat "$shared/hb/.vmk.lck" 2>&1)"
wait_hb esx1 hb 10 && ok "console shows heartbeats" || not_ok "heartbeats" "$(vmkctl -s esx1 vm console -n hb 2>&1)"
run vmkctl -s esx1 --formatter json vm process list
[[ $(json_get '[(p["world_id"] == p["pid"] == '"$pid"', p["name"], p["config_file"].endswith("/hb/hb.vmx")) for p in d]') == \
	"[(True, 'hb', True)]" ]] && ok "vm process list shows the vmx" || not_ok "process list" "$out"
run vmkctl -s esx1 --formatter json vm list
[[ $(json_get '[(v["name"], v["state"]) for v in d]') == "[('hb', 'poweredOn')]" ]] &&
	ok "vm list: poweredOn" || not_ok "vm list" "$out"

# illegal requests name the state
expect 5 "power on a running VM -> 5" vmkctl -s esx1 vm power on -n hb
expect_match "is poweredOn" "the message names the state" "$err"
expect 5 "destroy a running VM -> 5" vmkctl -s esx1 vm destroy -n hb
expect 5 "resume a running VM -> 5" vmkctl -s esx1 vm power resume -n hb
expect 4 "power on an unknown VM -> 4" vmkctl -s esx1 vm power on -n nosuch
expect 2 "process kill with a bad type -> 2" vmkctl -s esx1 vm process kill -t gently -w "$pid"
expect 4 "process kill of an unknown world -> 4" vmkctl -s esx1 vm process kill -t soft -w 4000000

# suspend / resume: the heartbeat sequence continues where it stopped
expect 0 "vm power suspend" vmkctl -s esx1 vm power suspend -n hb
[[ $(vm_field esx1 hb '(d["state"], d["pid"], d["lock_owner"])') == "('suspended', 0, '')" ]] &&
	ok "suspended: no vmx, lock released" || not_ok "after suspend" "$out"
[[ -s $shared/hb/hb.vmss ]] && ok "the suspended state is in hb.vmss" || not_ok "hb.vmss" "$(ls "$shared/hb")"
before=$(heartbeats esx1 hb | tail -n 1)
expect 5 "suspend a suspended VM -> 5" vmkctl -s esx1 vm power suspend -n hb
expect 0 "vm power resume" vmkctl -s esx1 vm power resume -n hb
wait_hb esx1 hb $((before + 10)) && ok "heartbeats resume after the suspend" || not_ok "heartbeats after resume"
heartbeats esx1 hb | unbroken && ok "the heartbeat sequence is unbroken across suspend/resume" ||
	not_ok "sequence across suspend" "$(heartbeats esx1 hb | tr '\n' ' ' | tail -c 300)"
[[ ! -e $shared/hb/hb.vmss ]] && ok "hb.vmss is gone once resumed" || not_ok "hb.vmss left"

# reset: a new boot (the sequence starts again), still one vmx
pid1=$(vm_field esx1 hb 'd["pid"]')
expect 0 "vm power reset" vmkctl -s esx1 vm power reset -n hb
pid2=$(vm_field esx1 hb 'd["pid"]')
[[ $pid2 -gt 0 && $pid2 != "$pid1" ]] && ok "reset: a new vmx" || not_ok "reset pid" "$pid1 -> $pid2"
for _ in $(seq 100); do
	[[ $(vmkctl -s esx1 vm console -n hb --lines 1) == "hb "* ]] && break
	sleep 0.1
done
kill -0 "$pid1" 2>/dev/null && not_ok "the old vmx is gone" || ok "the old vmx is gone"

# ---- the datastore lock: one VM, two hosts ----
expect 0 "register hb on esx2 too" vmkctl -s esx2 vm register --path shared:hb/hb.vmx
expect 5 "power on on esx2 while esx1 runs it -> 5" vmkctl -s esx2 vm power on -n hb
expect_match "running on host esx1" "the message names esx1" "$err"
[[ $(vm_field esx2 hb 'd["state"]') == poweredOff ]] && ok "esx2 still shows it poweredOff" || not_ok "esx2 state" "$out"
expect 0 "power off on esx1" vmkctl -s esx1 vm power off -n hb
[[ $(vm_field esx1 hb '(d["state"], d["pid"], d["lock_owner"])') == "('poweredOff', 0, '')" ]] &&
	ok "powered off: no vmx, lock released" || not_ok "after power off" "$out"
expect 0 "now esx2 powers it on" vmkctl -s esx2 vm power on -n hb
expect 5 "and esx1 cannot" vmkctl -s esx1 vm power on -n hb
expect_match "running on host esx2" "the message names esx2" "$err"
expect 0 "power off on esx2" vmkctl -s esx2 vm power off -n hb
expect 0 "unregister from esx2" vmkctl -s esx2 vm unregister -n hb

# ---- hostd killed while two VMs run ----
expect 0 "vm create a" vmkctl -s esx1 vm create -n a -m 32 --kernel "$ELF" --cmdline "heartbeat interval_ms=20"
expect 0 "vm power on a" vmkctl -s esx1 vm power on -n a
expect 0 "vm power on hb" vmkctl -s esx1 vm power on -n hb
run vmkctl -s esx1 --formatter json vm list
list_before=$out
pa=$(vm_field esx1 a 'd["pid"]')
"$LAB" kill-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
wait_hb_file() { # FILE N: heartbeat N in a serial log, read directly (hostd is down)
	for _ in $(seq 200); do
		[[ $(awk '/^hb [0-9]+$/ { n = $2 } END { print n + 0 }' "$1") -ge $2 ]] && return 0
		sleep 0.1
	done
	return 1
}
n_a=$(awk '/^hb [0-9]+$/ { n = $2 } END { print n + 0 }' "$LAB_DIR/esx1/datastore1/a/serial.log")
wait_hb_file "$LAB_DIR/esx1/datastore1/a/serial.log" $((n_a + 10)) &&
	ok "with hostd dead, the guest keeps beating" || not_ok "heartbeats with hostd dead"
"$LAB" start-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
run vmkctl -s esx1 --formatter json vm list
[[ $out == "$list_before" ]] && ok "vm list unchanged after the hostd restart" ||
	not_ok "vm list after restart" "before: $list_before" "after: $out"
[[ $(vm_field esx1 a 'd["pid"]') == "$pa" ]] && ok "re-attached to the same vmx" || not_ok "pid after restart" "$out"
heartbeats esx1 a | unbroken && ok "a's heartbeats never stopped" || not_ok "a's sequence" "$(heartbeats esx1 a | tail -c 300)"
expect 0 "power off still works after the restart" vmkctl -s esx1 vm power off -n a

# ---- a vmx killed with SIGKILL ----
ph=$(vm_field esx1 hb 'd["pid"]')
kill -9 "$ph"
for _ in $(seq 50); do
	[[ $(vm_field esx1 hb 'd["state"]') == crashed ]] && break
	sleep 0.1
done
[[ $(vm_field esx1 hb '(d["state"], d["pid"], d["lock_owner"])') == "('crashed', 0, '')" ]] &&
	ok "a killed vmx: crashed, lock released" || not_ok "after kill -9" "$out"
expect_match "signal 9" "the reason names the signal" "$(vm_field esx1 hb 'd["state_reason"]')"
[[ ! -e $shared/hb/.vmk.lck ]] && ok "no lock file left" || not_ok "lock file left" "$(cat "$shared/hb/.vmk.lck")"
expect 0 "hostd keeps serving" vmkctl -s esx1 system version get
run vmkctl -s esx1 --formatter json vm get -n hb
expect_match "crashed: vmx pid $ph was killed by signal 9" "the event log records the crash" "$out"
expect 0 "a crashed VM powers on again" vmkctl -s esx1 vm power on -n hb
expect 0 "process kill -t soft" vmkctl -s esx1 vm process kill -t soft -w "$(vm_field esx1 hb 'd["pid"]')"
for _ in $(seq 50); do
	[[ $(vm_field esx1 hb 'd["state"]') == poweredOff ]] && break
	sleep 0.1
done
[[ $(vm_field esx1 hb 'd["state"]') == poweredOff ]] && ok "a soft kill powers it off (not a crash)" ||
	not_ok "after soft kill" "$out"
expect 0 "vm power on a again" vmkctl -s esx1 vm power on -n a
expect 0 "process kill -t force" vmkctl -s esx1 vm process kill -t force -w "$(vm_field esx1 a 'd["pid"]')"
for _ in $(seq 50); do
	[[ $(vm_field esx1 a 'd["state"]') == poweredOff ]] && break
	sleep 0.1
done
[[ $(vm_field esx1 a 'd["state"]') == poweredOff ]] && ok "a forced kill by a user is no crash" || not_ok "after force kill" "$out"

# ---- a console log that is a FIFO: vm console refuses it at once ----
# (before, the open waited for a writer and held a hostd worker for good)
mkdir -p "$shared/fifocon"
mkfifo "$shared/fifocon/console.fifo"
cat >"$shared/fifocon/fifocon.vmx" <<EOC
vm = { name = "fifocon"; uuid = "564d0000-0000-4000-8000-00000000f1f0"; memory_mib = 32;
       vcpus = 1; kernel = "$ELF"; cmdline = "hello"; serial_log = "console.fifo"; };
EOC
expect 0 "register a VM whose serial log is a FIFO" vmkctl -s esx1 vm register --path shared:fifocon/fifocon.vmx
expect 1 "vm console of it: refused" timeout 20 "$VMK_BIN/vmkctl" --lab "$LAB_DIR" -s esx1 vm console -n fifocon
expect_match "console log .*console.fifo is not a regular file" "the message says why" "$err"
expect 0 "unregister it" vmkctl -s esx1 vm unregister -n fifocon
rm -rf "$shared/fifocon"

# ---- destroy ----
expect 0 "vm destroy hb" vmkctl -s esx1 vm destroy -n hb
[[ ! -e $shared/hb ]] && ok "its directory is gone" || not_ok "hb directory left" "$(ls "$shared/hb")"
run vmkctl -s esx1 --formatter json vm list
[[ $(json_get '[v["name"] for v in d]') == "['a']" ]] && ok "vm list after destroy" || not_ok "list after destroy" "$out"
grep -q "AddressSanitizer\|runtime error" "$LAB_DIR"/esx1/hostd.out && not_ok "hostd.out is clean" "$(cat "$LAB_DIR"/esx1/hostd.out)" ||
	ok "hostd.out is clean"
t_done
