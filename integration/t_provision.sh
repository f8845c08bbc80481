#!/usr/bin/env bash
# Provisioning in a two-host lab: cold migration of a powered-off VM with a
# disk between the hosts' own (unshared) datastores over NFC on the
# provisioning vmk, verified by the guest at the destination; a copy that
# resumes after the cable was pulled; a cancel; full clones on the same
# host and on another; a suspended VM that moves with its state; a VM on
# the shared datastore that only changes hosts; bad input that leaves the
# VM intact.
set -u
LAB_DIR=/tmp/vmk-test-provision
. "$(dirname "$0")/lib.sh"

tiny=$LAB_DIR/esx2/tiny
cleanup() {
	umount -l "$tiny" 2>/dev/null
	t_cleanup
}
trap cleanup EXIT

t_accel
t_lab_up 2

names_on() { # HOST: the VMs it lists, with their state
	run vmkctl -s "$1" --formatter json vm list
	json_get '" ".join(sorted(v["name"] + ":" + v["state"] for v in d))'
}
wait_state() { # HOST VM STATE: bounded
	for _ in $(seq 300); do [[ $(names_on "$1") == *"$2:$3"* ]] && return 0; sleep 0.1; done
	return 1
}
task_detail() { # HOST TASK KEY
	run vmkctl -s "$1" --formatter json task get -t "$2"
	json_get "d.get('$3')"
}
ds1=$LAB_DIR/esx1/datastore1 ds2=$LAB_DIR/esx2/datastore1

# ---- the provisioning network: vmk2 on each host, tagged ----
for k in 1 2; do
	vmkctl -s esx$k network ip interface add -i vmk2 -p Provisioning -N vSphereProvisioning >/dev/null &&
		vmkctl -s esx$k network ip interface ipv4 set -i vmk2 -t static -I 198.18.3.1$k \
			-N 255.255.255.0 >/dev/null &&
		vmkctl -s esx$k network ip interface tag add -i vmk2 -t vSphereProvisioning >/dev/null ||
		not_ok "esx$k: vmk2 on the provisioning network"
done

# ---- a VM with a disk its guest wrote and verified, on esx1's local datastore ----
expect 0 "vm create dc on esx1's datastore1 with a 64 MiB disk" vmkctl -s esx1 vm create -n dc -m 32 \
	--kernel "$ELF" --cmdline "disk blocks=2048 passes=1 seed=7" --disk 64
expect 0 "power on dc" vmkctl -s esx1 vm power on -n dc
wait_state esx1 dc poweredOff && grep -q "^disk pass 1 OK$" "$ds1/dc/serial.log" &&
	ok "dc wrote 8 MiB of seeded blocks, verified them and powered off" ||
	not_ok "dc's first boot" "$(cat "$ds1/dc/serial.log" 2>&1)"
# from now on it boots to verify what that pass wrote
expect 0 "unregister dc" vmkctl -s esx1 vm unregister -n dc
sed -i 's/cmdline = "disk blocks=2048 passes=1 seed=7"/cmdline = "disk verify-only=1 pass=1 blocks=2048 seed=7"/' \
	"$ds1/dc/dc.vmx"
expect 0 "register it again, booting to verify" vmkctl -s esx1 vm register --path datastore1:dc/dc.vmx
sum=$(sha256sum <"$ds1/dc/disk0.img")

# ---- bad input: each refused, the VM stays as it was ----
expect 5 "a live migration of a powered-off VM -> 5" vmkctl -s esx1 vm migrate -n dc --dest esx2
expect_match "--cold" "the message suggests --cold" "$err"
expect 4 "--cold to a datastore esx2 lacks -> 4" vmkctl -s esx1 vm migrate -n dc --dest esx2 --cold \
	--datastore nosuch
expect_match "nosuch" "the message names the datastore" "$err"
expect 2 "--cold to itself -> 2" vmkctl -s esx1 vm migrate -n dc --dest esx1 --cold
expect 4 "--cold of an unknown VM -> 4" vmkctl -s esx1 vm migrate -n nosuch --dest esx2 --cold
expect 2 "--datastore without --cold -> 2" vmkctl -s esx1 vm migrate -n dc --dest esx2 --datastore datastore1
mkdir -p "$tiny" && mount -t tmpfs -o size=4m tmpfs "$tiny" &&
	vmkctl -s esx2 storage datastore add -n tiny --path "$tiny" >/dev/null ||
	not_ok "a 4 MiB tmpfs datastore on esx2"
expect 5 "--cold to a datastore with too little room -> 5" vmkctl -s esx1 vm migrate -n dc --dest esx2 \
	--cold --datastore tiny
expect_match "tiny.*MiB free" "the message names the datastore and its free space" "$err"
expect 0 "vm create another dc on esx2" vmkctl -s esx2 vm create -n dc -m 32 --kernel "$ELF"
expect 5 "--cold to a host that has a VM of that name -> 5" vmkctl -s esx1 vm migrate -n dc --dest esx2 --cold
expect 0 "destroy esx2's dc" vmkctl -s esx2 vm destroy -n dc
[[ $(names_on esx1) == "dc:poweredOff" && $(names_on esx2) == "" && ! -e $ds2/dc && ! -e $tiny/dc ]] &&
	ok "after the refusals dc is on esx1 only, and nothing was left on esx2" ||
	not_ok "state after refusals" "esx1: $(names_on esx1)" "esx2: $(names_on esx2)" "$(ls "$ds2" "$tiny" 2>&1)"
[[ $(sha256sum <"$ds1/dc/disk0.img") == "$sum" ]] && ok "its disk is untouched" || not_ok "disk changed"

# ---- a cancel mid-copy: the VM stays, the destination cleans up ----
run vmkctl -s esx1 --formatter json vm migrate -n dc --dest esx2 --cold --max-bandwidth 2 --async
task=$(json_get 'd["task_id"]')
sleep 1
expect 0 "task cancel of the cold migration" vmkctl -s esx1 task cancel -t "$task"
run vmkctl -s esx1 --formatter json task get -t "$task" --wait
[[ $rc -eq 7 ]] && ok "the task ends cancelled (exit 7)" || not_ok "cancelled task" "rc=$rc" "$out" "$err"
for _ in $(seq 100); do [[ ! -e $ds2/dc ]] && break; sleep 0.1; done
[[ $(names_on esx1) == "dc:poweredOff" && $(names_on esx2) == "" && ! -e $ds2/dc ]] &&
	ok "dc is on esx1, poweredOff; esx2 removed what it had received" ||
	not_ok "after the cancel" "esx1: $(names_on esx1)" "esx2: $(names_on esx2)" "$(ls -a "$ds2/dc" 2>&1)"

# ---- the cold migration, its cable pulled and plugged back halfway ----
run vmkctl -s esx1 --formatter json vm migrate -n dc --dest esx2 --cold --max-bandwidth 2 --async
task=$(json_get 'd["task_id"]')
sleep 1.5
"$LAB" link esx1 prov down --dir "$LAB_DIR" >/dev/null
sleep 6
"$LAB" link esx1 prov up --dir "$LAB_DIR" >/dev/null
run vmkctl -s esx1 --formatter json task get -t "$task" --wait
[[ $rc -eq 0 && $(json_get '(d["state"], d["kind"], d["vm"], d["source"], d["destination"])') == \
	"('success', 'cold', 'dc', 'esx1', 'esx2')" ]] &&
	ok "cold migration esx1 -> esx2 succeeds across the pulled cable" || not_ok "cold migration" "$out" "$err"
[[ $(json_get 'd["reconnects"] >= 1') == True ]] && ok "the copy reconnected and resumed" ||
	not_ok "no reconnect" "$out"
[[ $(json_get '8 << 20 <= d["transferred_bytes"] < 16 << 20') == True ]] &&
	ok "about the disk's 8 MiB of data crossed (not its 64 MiB, nor all of it twice)" ||
	not_ok "bytes" "$out"
[[ $(json_get 'd["stream"]') == *"vmk2 198.18.3.11 -> esx2 vmk2 198.18.3.12:"* ]] &&
	ok "over the provisioning vmks" || not_ok "stream" "$out"
[[ $(names_on esx2) == "dc:poweredOff" && $(names_on esx1) == "" ]] &&
	ok "esx2 lists dc, poweredOff; esx1 no longer" ||
	not_ok "lists after the migration" "esx1: $(names_on esx1)" "esx2: $(names_on esx2)"
[[ ! -e $ds1/dc ]] && ok "the source's directory is gone" || not_ok "source dir left" "$(ls -a "$ds1/dc")"
[[ $(sha256sum <"$ds2/dc/disk0.img") == "$sum" ]] && ok "the disk arrived byte for byte" ||
	not_ok "disk content"
[[ $(du -k "$ds2/dc/disk0.img" | cut -f1) -lt 16384 ]] && ok "and sparse: its holes stayed holes" ||
	not_ok "disk allocation" "$(du -k "$ds2/dc/disk0.img")"
ls "$ds2/dc" | grep -q "\.part$" && not_ok "a .part file was left" || ok "no .part file left"
expect 0 "power on dc on esx2" vmkctl -s esx2 vm power on -n dc
wait_state esx2 dc poweredOff && [[ $(grep -c "^disk pass 1 OK$" "$ds2/dc/serial.log") -eq 2 ]] &&
	! grep -q CORRUPT "$ds2/dc/serial.log" &&
	ok "on esx2 the guest verifies every block (its serial log moved along)" ||
	not_ok "verify on esx2" "$(cat "$ds2/dc/serial.log")"

# ---- full clones, on the same host and on another ----
run vmkctl -s esx2 --formatter json vm clone -n dc --name dc2
[[ $rc -eq 0 && $(json_get '(d["state"], d["vm"], d["clone"], d["kind"])') == "('success', 'dc', 'dc2', 'full')" ]] &&
	ok "clone dc as dc2 on esx2" || not_ok "clone on the same host" "$out" "$err"
uuid_of() { run vmkctl -s "$1" --formatter json vm get -n "$2"; json_get 'd["uuid"]'; }
u1=$(uuid_of esx2 dc) u2=$(uuid_of esx2 dc2)
[[ -n $u1 && -n $u2 && $u1 != "$u2" ]] && ok "dc2 has a uuid of its own (and so its own MACs)" ||
	not_ok "clone uuid" "$u1" "$u2"
[[ $(sha256sum <"$ds2/dc2/disk0.img") == "$sum" && $(du -k "$ds2/dc2/disk0.img" | cut -f1) -lt 16384 ]] &&
	ok "dc2's disk is a sparse copy of dc's" || not_ok "clone disk" "$(du -k "$ds2/dc2/disk0.img")"
[[ ! -e $ds2/dc2/serial.log && ! -e $ds2/dc2/vmx.log ]] && ok "the clone starts with no logs of dc's" ||
	not_ok "clone logs" "$(ls "$ds2/dc2")"
[[ $(names_on esx2) == "dc2:poweredOff dc:poweredOff" ]] && ok "dc stays poweredOff beside it" ||
	not_ok "states after the clone" "$(names_on esx2)"
run vmkctl -s esx2 --formatter json vm clone -n dc --name dc3 --dest esx1 --powered-on
[[ $rc -eq 0 && $(json_get '(d["state"], d["destination"])') == "('success', 'esx1')" ]] &&
	ok "clone dc to esx1 as dc3, powered on" || not_ok "clone to another host" "$out" "$err"
[[ $(json_get 'd["stream"]') == *"vmk2 198.18.3.12 -> esx1 vmk2 198.18.3.11:"* ]] &&
	ok "copied over the provisioning vmks" || not_ok "clone stream" "$out"
wait_state esx1 dc3 poweredOff && grep -q "^disk pass 1 OK$" "$ds1/dc3/serial.log" &&
	! grep -q CORRUPT "$ds1/dc3/serial.log" && ok "dc3 ran on esx1 and verified every block of its copy" ||
	not_ok "dc3 on esx1" "$(cat "$ds1/dc3/serial.log" 2>&1)"
[[ $(names_on esx2) == "dc2:poweredOff dc:poweredOff" ]] && ok "esx2 still has dc and dc2" ||
	not_ok "esx2 after the remote clone" "$(names_on esx2)"
# writes in a clone go to its own disk
expect 0 "vm create wr on esx1 (a disk writer)" vmkctl -s esx1 vm create -n wr -m 32 --kernel "$ELF" \
	--cmdline "disk blocks=256 passes=1 seed=9" --disk 8
expect 0 "power on wr" vmkctl -s esx1 vm power on -n wr
wait_state esx1 wr poweredOff || not_ok "wr's pass"
expect 0 "clone wr as wr2" vmkctl -s esx1 vm clone -n wr --name wr2
before=$(stat -c %Y.%i "$ds1/wr/disk0.img")
sleep 1.1
expect 0 "power on wr2, which writes its disk" vmkctl -s esx1 vm power on -n wr2
wait_state esx1 wr2 poweredOff && grep -q "^disk pass 1 OK$" "$ds1/wr2/serial.log" || not_ok "wr2's pass"
[[ $(stat -c %Y.%i "$ds1/wr/disk0.img") == "$before" && $(stat -c %i "$ds1/wr2/disk0.img") != "${before#*.}" ]] &&
	ok "wr2's writes went to its own disk; wr's was not touched" ||
	not_ok "clone write isolation" "$before $(stat -c %Y.%i "$ds1/wr/disk0.img" "$ds1/wr2/disk0.img")"
# bad input
expect 5 "a clone name that is taken -> 5" vmkctl -s esx2 vm clone -n dc --name dc2
expect_match "dc2" "the message names it" "$err"
expect 4 "a clone of an unknown VM -> 4" vmkctl -s esx2 vm clone -n nosuch --name x
expect 5 "a clone into the full tmpfs datastore -> 5" vmkctl -s esx2 vm clone -n dc --name dc4 --datastore tiny
expect_match "free" "the message says why" "$err"
expect 2 "--linked with --dest -> 2 (a linked clone stays by its base)" vmkctl -s esx2 vm clone -n dc \
	--name dcl --linked --dest esx1
# a running writer-verifier, cloned without stopping: here and to esx1
expect 0 "vm create run1 on esx2 (a disk writer-verifier)" vmkctl -s esx2 vm create -n run1 -m 32 \
	--kernel "$ELF" --cmdline "disk blocks=512 passes=0 seed=5" --disk 16
expect 0 "power on run1" vmkctl -s esx2 vm power on -n run1
passes() { awk '/^disk pass [0-9]+ OK$/ { n = $3 } END { print n + 0 }' "$1"; }
for _ in $(seq 100); do [[ $(passes "$ds2/run1/serial.log") -ge 3 ]] && break; sleep 0.1; done
run vmkctl -s esx2 --formatter json vm clone -n run1 --name run2 --powered-on
[[ $rc -eq 0 && $(json_get 'd["state"]') == success ]] && ok "clone the running run1 as run2, powered on" ||
	not_ok "clone of a running VM" "$out" "$err"
expect 0 "and to esx1 as run3, powered on" vmkctl -s esx2 vm clone -n run1 --name run3 --dest esx1 --powered-on
[[ $(names_on esx2) == *"run1:poweredOn"*"run2:poweredOn"* && $(names_on esx1) == *"run3:poweredOn"* ]] &&
	ok "run1, run2 and run3 all run at once" || not_ok "states" "esx1: $(names_on esx1)" "esx2: $(names_on esx2)"
u1=$(uuid_of esx2 run1) u2=$(uuid_of esx2 run2) u3=$(uuid_of esx1 run3)
[[ $u1 != "$u2" && $u1 != "$u3" && $u2 != "$u3" ]] && ok "each with a uuid of its own" || not_ok "uuids" "$u1 $u2 $u3"
p=$(passes "$ds2/run1/serial.log")
for _ in $(seq 100); do [[ $(passes "$ds2/run1/serial.log") -ge $((p + 3)) ]] && break; sleep 0.1; done
[[ $(passes "$ds2/run1/serial.log") -ge $((p + 3)) ]] && ! grep -q CORRUPT "$ds2/run1/serial.log" &&
	ok "run1 kept writing and verifying through both clones (its disks frozen and consolidated)" ||
	not_ok "run1 after the clones" "$(tail -3 "$ds2/run1/serial.log")"
[[ $(ls "$ds2/run1" | grep -c "\.delta$") -eq 0 && $(ls -a "$ds2/run1" | grep -c "clone") -eq 0 ]] &&
	ok "no temporary layer or copy is left in run1's directory" || not_ok "run1's files" "$(ls -a "$ds2/run1")"
for _ in $(seq 100); do
	[[ $(passes "$ds2/run2/serial.log") -ge 2 && $(passes "$ds1/run3/serial.log") -ge 2 ]] && break
	sleep 0.1
done
[[ $(passes "$ds2/run2/serial.log") -ge 2 && $(passes "$ds1/run3/serial.log") -ge 2 ]] &&
	! grep -q CORRUPT "$ds2/run2/serial.log" "$ds1/run3/serial.log" &&
	ok "run2 and run3 write and verify their own disks" ||
	not_ok "clones running" "$(tail -2 "$ds2/run2/serial.log" "$ds1/run3/serial.log" 2>&1)"
[[ $(stat -c %i "$ds2/run1/disk0.img") != "$(stat -c %i "$ds2/run2/disk0.img")" ]] &&
	ok "run2's disk is a file of its own" || not_ok "shared disk file"
for vm in run1 run2; do vmkctl -s esx2 vm power off -n $vm >/dev/null; done
vmkctl -s esx1 vm power off -n run3 >/dev/null
[[ ! -e $ds2/dc4 && ! -e $tiny/dc4 && ! -e $ds2/dcl && $(names_on esx2) != *dc4* ]] &&
	ok "the refused clones left nothing behind" || not_ok "leftovers" "$(ls "$ds2" "$tiny")"

# ---- a suspended VM moves with its saved state ----
expect 0 "vm create hb on esx2" vmkctl -s esx2 vm create -n hb -m 32 --kernel "$ELF" \
	--cmdline "heartbeat interval_ms=20"
expect 0 "power on hb" vmkctl -s esx2 vm power on -n hb
for _ in $(seq 100); do grep -q "^hb 10$" "$ds2/hb/serial.log" 2>/dev/null && break; sleep 0.1; done
expect 0 "suspend hb" vmkctl -s esx2 vm power suspend -n hb
last=$(awk '/^hb [0-9]+$/ { n = $2 } END { print n }' "$ds2/hb/serial.log")
expect 0 "cold-migrate the suspended hb to esx1" vmkctl -s esx2 vm migrate -n hb --dest esx1 --cold
[[ $(names_on esx1) == *"hb:suspended"* ]] && ok "esx1 lists hb as suspended" || not_ok "hb state" "$(names_on esx1)"
expect 0 "resume hb on esx1" vmkctl -s esx1 vm power on -n hb
for _ in $(seq 100); do grep -q "^hb $((last + 5))$" "$ds1/hb/serial.log" 2>/dev/null && break; sleep 0.1; done
awk -v l="$last" '/^hb [0-9]+$/ && $2 > l { print $2; exit }' "$ds1/hb/serial.log" | grep -qx "$((last + 1))" &&
	ok "hb continues from its suspended state: hb $((last + 1)) follows hb $last" ||
	not_ok "hb after resume" "$(tail -5 "$ds1/hb/serial.log")"
expect 0 "power off hb" vmkctl -s esx1 vm power off -n hb

# ---- the shared datastore: no copy, only the host changes ----
expect 0 "vm create sh on the shared datastore" vmkctl -s esx1 vm create -n sh -m 32 --kernel "$ELF" \
	--cmdline "heartbeat interval_ms=50" -d shared
run vmkctl -s esx1 --formatter json vm migrate -n sh --dest esx2 --cold
[[ $rc -eq 0 && $(json_get '(d["state"], d["transferred_bytes"])') == "('success', 0)" ]] &&
	ok "a cold migration on the shared datastore copies nothing" || not_ok "shared cold migration" "$out" "$err"
[[ $(names_on esx2) == *"sh:poweredOff"* && $(names_on esx1) != *sh* && -f $shared/sh/sh.vmx ]] &&
	ok "esx2 lists sh, esx1 no longer, its files stay where they are" ||
	not_ok "shared lists" "esx1: $(names_on esx1)" "esx2: $(names_on esx2)"
expect 0 "and it powers on there" vmkctl -s esx2 vm power on -n sh
expect 0 "power off sh" vmkctl -s esx2 vm power off -n sh

# ---- snapshot migration: a VM's snapshot tree moves with it (cold) ----
expect 0 "snapshot wr (powered off) as before" vmkctl -s esx1 vm snapshot create -n wr --snapshot before
expect 0 "power on wr: its pass goes into the new delta" vmkctl -s esx1 vm power on -n wr
for _ in $(seq 100); do [[ $(names_on esx1) == *"wr:poweredOff"* ]] && break; sleep 0.1; done
expect 0 "cold-migrate wr with its snapshot to esx2" vmkctl -s esx1 vm migrate -n wr --dest esx2 --cold
run vmkctl -s esx2 --formatter json vm snapshot list -n wr
[[ $(json_get '[(s["name"], s["current"]) for s in d]') == "[('before', True)]" ]] &&
	ok "esx2 lists wr's snapshot before, current" || not_ok "snapshot list on esx2" "$out" "$err"
expect 0 "power on wr on esx2: it runs on the migrated chain" vmkctl -s esx2 vm power on -n wr
for _ in $(seq 100); do [[ $(names_on esx2) == *"wr:poweredOff"* ]] && break; sleep 0.1; done
[[ $(grep -c "^disk pass 1 OK$" "$ds2/wr/serial.log") -ge 2 ]] && ! grep -q CORRUPT "$ds2/wr/serial.log" &&
	ok "and its pass verifies there" || not_ok "wr on esx2" "$(tail -3 "$ds2/wr/serial.log")"
expect 0 "revert wr to before on esx2" vmkctl -s esx2 vm snapshot revert -n wr --snapshot before
expect 0 "remove before on esx2: one raw disk again" vmkctl -s esx2 vm snapshot remove -n wr --snapshot before
# live, with --storage: the snapshot tree moves too (its frozen layers
# staged over NFC first, then the tops streamed by the migration)
expect 0 "power on run1 on esx2" vmkctl -s esx2 vm power on -n run1
for _ in $(seq 100); do [[ $(passes "$ds2/run1/serial.log") -ge 2 ]] && break; sleep 0.1; done
expect 0 "a snapshot s of the running run1" vmkctl -s esx2 vm snapshot create -n run1 --snapshot s
p=$(passes "$ds2/run1/serial.log")
for _ in $(seq 100); do [[ $(passes "$ds2/run1/serial.log") -ge $((p + 2)) ]] && break; sleep 0.1; done
run vmkctl -s esx2 --formatter json vm migrate -n run1 --dest esx1 --storage datastore1
[[ $rc -eq 0 && $(json_get 'd["state"]') == success ]] && ok "run1 with its snapshot migrates live with --storage" ||
	not_ok "live storage migration with a snapshot" "$out" "$err"
[[ $(names_on esx1) == *"run1:poweredOn"* && $(names_on esx2) != *run1* && ! -e $ds2/run1 ]] &&
	ok "esx1 runs run1; esx2 has nothing of it left" || not_ok "after the migration" "$(names_on esx1)" "$(ls "$ds2")"
run vmkctl -s esx1 --formatter json vm snapshot list -n run1
[[ $(json_get '[(s["name"], s["current"]) for s in d]') == "[('s', True)]" ]] &&
	ok "esx1 lists its snapshot s, current" || not_ok "snapshot list on esx1" "$out" "$err"
[[ -f $ds1/run1/disk0.img && -f $ds1/run1/run1.vmsd && $(ls "$ds1/run1" | grep -c "\.delta$") -eq 1 &&
	! -e $ds1/run1/.staged ]] && ok "its base, its delta and its tree are in esx1's datastore1" ||
	not_ok "files on esx1" "$(ls -a "$ds1/run1")"
p=$(passes "$ds1/run1/serial.log")
for _ in $(seq 100); do [[ $(passes "$ds1/run1/serial.log") -ge $((p + 3)) ]] && break; sleep 0.1; done
[[ $(passes "$ds1/run1/serial.log") -ge $((p + 3)) ]] && ! grep -q CORRUPT "$ds1/run1/serial.log" &&
	ok "on esx1 the guest verifies every block on its migrated chain" ||
	not_ok "run1 on esx1" "$(tail -3 "$ds1/run1/serial.log")"
expect 0 "remove s on esx1 (consolidated under the running guest)" \
	vmkctl -s esx1 vm snapshot remove -n run1 --snapshot s
p=$(passes "$ds1/run1/serial.log")
for _ in $(seq 100); do [[ $(passes "$ds1/run1/serial.log") -ge $((p + 2)) ]] && break; sleep 0.1; done
! grep -q CORRUPT "$ds1/run1/serial.log" && ok "and it still verifies" || not_ok "after remove on esx1"
expect 0 "power off run1" vmkctl -s esx1 vm power off -n run1

t_done
