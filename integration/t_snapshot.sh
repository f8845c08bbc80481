#!/usr/bin/env bash
# Snapshots in a one-host lab: a disk-writing guest snapshotted with its
# memory while it runs, reverted (its pass count jumps back and every block
# still verifies), a chain of three snapshots with the middle one removed
# (consolidated under the running guest), the others removed down to one
# raw disk again; a powered-off VM's snapshots; bad input.
set -u
LAB_DIR=/tmp/vmk-test-snapshot
. "$(dirname "$0")/lib.sh"

t_accel
t_lab_up 1

ds=$LAB_DIR/esx1/datastore1
names_on() {
	run vmkctl -s esx1 --formatter json vm list
	json_get '" ".join(sorted(v["name"] + ":" + v["state"] for v in d))'
}
snaps() { # VM: "name:parent:memory:current ..."
	run vmkctl -s esx1 --formatter json vm snapshot list -n "$1"
	json_get '" ".join("%s:%s:%s:%s" % (s["name"], s["parent"], s["memory"], s["current"]) for s in d)'
}
last_pass() { awk '/^disk pass [0-9]+ OK$/ { n = $3 } END { print n + 0 }' "$ds/$1/serial.log"; }
wait_pass() { # VM N: bounded
	for _ in $(seq 300); do [[ $(last_pass "$1") -ge $2 ]] && return 0; sleep 0.1; done
	return 1
}
corrupt() { grep -c CORRUPT "$ds/$1/serial.log"; }

# ---- a running guest that writes and verifies its disk, pass after pass ----
expect 0 "vm create sd (64 MiB disk, a writer-verifier)" vmkctl -s esx1 vm create -n sd -m 32 \
	--kernel "$ELF" --cmdline "disk blocks=512 passes=0 seed=5" --disk 64
expect 0 "power on sd" vmkctl -s esx1 vm power on -n sd
wait_pass sd 3 && ok "sd writes and verifies its disk" || not_ok "sd passes" "$(tail -3 "$ds/sd/serial.log")"

run vmkctl -s esx1 --formatter json vm snapshot create -n sd --snapshot s1 --memory
[[ $rc -eq 0 && $(json_get '(d["state"], d["snapshot"], d["snapshot_id"])') == "('success', 's1', 1)" ]] &&
	ok "snapshot s1 with memory of the running sd" || not_ok "snapshot create" "$out" "$err"
at=$(last_pass sd)
[[ -f $ds/sd/disk0-000001.delta && -f $ds/sd/sd-1.vmsn ]] && ok "a delta disk and a memory file appeared" ||
	not_ok "snapshot files" "$(ls "$ds/sd")"
run vmkctl -s esx1 --formatter json vm get -n sd
[[ $(json_get 'd["disks"][0].endswith("disk0-000001.delta")') == True ]] &&
	ok "the VM's disk is the new delta now" || not_ok "disk after snapshot" "$out"
wait_pass sd $((at + 10)) && ok "the guest runs on after the snapshot" || not_ok "after snapshot"
[[ $(names_on) == "sd:poweredOn" ]] && ok "sd stays poweredOn" || not_ok "state" "$(names_on)"

# ---- revert: the guest goes back to that point, disk and memory agree ----
before=$(last_pass sd)
lines=$(wc -l <"$ds/sd/serial.log")
run vmkctl -s esx1 --formatter json vm snapshot revert -n sd --snapshot s1
[[ $rc -eq 0 && $(json_get '(d["state"], d["power_state"], d["was_running"])') == "('success', 'suspended', 'true')" ]] &&
	ok "revert sd to s1" || not_ok "revert" "$out" "$err"
[[ $(names_on) == "sd:poweredOn" ]] && ok "and it runs again, resumed from the snapshot" || not_ok "state after revert" "$(names_on)"
for _ in $(seq 300); do [[ $(tail -n +"$((lines + 1))" "$ds/sd/serial.log" | grep -c "^disk pass") -ge 3 ]] && break; sleep 0.1; done
# the first pass that is lower than the one before it: where the guest resumed
first=$(tail -n +"$((lines - 1))" "$ds/sd/serial.log" |
	awk '/^disk pass/ { if (p && $3 < p) { print $3; exit } p = $3 }')
[[ -n $first && $first -le $((at + 2)) && $first -lt $before ]] &&
	ok "its pass count jumped back: pass $first after pass $before (snapshot at pass $at)" ||
	not_ok "pass after revert" "first=$first at=$at before=$before"
[[ $(corrupt sd) -eq 0 ]] && ok "every block verifies against the memory it resumed with" ||
	not_ok "corruption after revert" "$(grep CORRUPT "$ds/sd/serial.log" | head -3)"
[[ ! -e $ds/sd/disk0-000001.delta && -f $ds/sd/sd-1.vmsn ]] &&
	ok "the discarded present's delta is gone, the snapshot's memory stays" || not_ok "files after revert" "$(ls "$ds/sd")"

# ---- a chain of three; the middle one removed under the running guest ----
expect 0 "snapshot s2" vmkctl -s esx1 vm snapshot create -n sd --snapshot s2
wait_pass sd $(($(last_pass sd) + 3)) || true
expect 0 "snapshot s3" vmkctl -s esx1 vm snapshot create -n sd --snapshot s3
wait_pass sd $(($(last_pass sd) + 3)) || true
[[ $(snaps sd) == "s1::True:False s2:s1:False:False s3:s2:False:True" ]] &&
	ok "list: s1 <- s2 <- s3, s3 current, only s1 with memory" || not_ok "snapshot list" "$(snaps sd)"
n=$(ls "$ds/sd" | grep -c "\.delta$")
expect 0 "remove the middle one, s2" vmkctl -s esx1 vm snapshot remove -n sd --snapshot s2
[[ $(snaps sd) == "s1::True:False s3:s1:False:True" ]] && ok "s3 hangs from s1 now" || not_ok "list after remove" "$(snaps sd)"
[[ $(ls "$ds/sd" | grep -c "\.delta$") -eq $((n - 1)) ]] && ok "one delta fewer: consolidated" ||
	not_ok "deltas after remove" "$(ls "$ds/sd")"
p=$(last_pass sd)
wait_pass sd $((p + 5)) && [[ $(corrupt sd) -eq 0 ]] && ok "the guest verifies its disk on, 5 passes later" ||
	not_ok "after removing s2" "$(tail -3 "$ds/sd/serial.log")"
expect 0 "remove s3 (its layer is the running top: consolidated online)" \
	vmkctl -s esx1 vm snapshot remove -n sd --snapshot s3
expect 0 "remove s1 (into the raw base)" vmkctl -s esx1 vm snapshot remove -n sd --snapshot s1
[[ $(snaps sd) == "" ]] && ok "no snapshots left" || not_ok "list" "$(snaps sd)"
[[ $(ls "$ds/sd" | grep -c "\.delta$") -le 1 && ! -e $ds/sd/sd-1.vmsn ]] &&
	ok "at most the running top's delta remains, and no memory file" || not_ok "files" "$(ls "$ds/sd")"
p=$(last_pass sd)
wait_pass sd $((p + 5)) && [[ $(corrupt sd) -eq 0 ]] && ok "and the guest still verifies every block" ||
	not_ok "after removing all" "$(tail -3 "$ds/sd/serial.log")"
expect 0 "power off sd" vmkctl -s esx1 vm power off -n sd
run vmkctl -s esx1 vm power on -n sd
wait_pass sd 2 && [[ $(corrupt sd) -eq 0 ]] && ok "after a power cycle it boots on the consolidated disk" ||
	not_ok "power cycle" "$(tail -3 "$ds/sd/serial.log")"
expect 0 "power off sd" vmkctl -s esx1 vm power off -n sd

# ---- linked clones: deltas over a snapshot of the source ----
expect 0 "power on sd again" vmkctl -s esx1 vm power on -n sd
wait_pass sd 2 || not_ok "sd passes"
run vmkctl -s esx1 --formatter json vm clone -n sd --name lc --linked --powered-on
[[ $rc -eq 0 && $(json_get '(d["state"], d["kind"])') == "('success', 'linked')" ]] &&
	ok "a linked clone lc of the running sd, powered on" || not_ok "linked clone" "$out" "$err"
[[ -f $ds/lc/disk0.delta && $(du -k "$ds/lc/disk0.delta" | cut -f1) -lt 8192 ]] &&
	ok "lc's disk is a delta holding only what lc wrote (under 8 MiB of the 64): nothing was copied" || not_ok "lc's disk" "$(ls -la "$ds/lc" 2>&1)"
[[ $(snaps sd) == *"clone-lc:"* ]] && ok "sd has a snapshot clone-lc under it" || not_ok "sd's snapshots" "$(snaps sd)"
wait_pass lc 3 && [[ $(corrupt lc) -eq 0 ]] && ok "lc writes and verifies its own disk" ||
	not_ok "lc passes" "$(tail -3 "$ds/lc/serial.log" 2>&1)"
p=$(last_pass sd)
wait_pass sd $((p + 3)) && [[ $(corrupt sd) -eq 0 ]] && ok "while sd writes and verifies on, untouched by lc" ||
	not_ok "sd after the linked clone" "$(tail -3 "$ds/sd/serial.log")"
expect 5 "removing clone-lc while lc exists -> 5" vmkctl -s esx1 vm snapshot remove -n sd --snapshot clone-lc
expect_match "linked clone" "the message names the linked clone" "$err"
expect 0 "power off sd" vmkctl -s esx1 vm power off -n sd
expect 5 "destroying sd while lc sits on it -> 5" vmkctl -s esx1 vm destroy -n sd
expect 0 "a full clone of lc (flat) as lcf" vmkctl -s esx1 vm clone -n lc --name lcf
[[ $(head -c 8 "$ds/lcf/disk0.img") != VMKDLTA1 && -s $ds/lcf/disk0.img ]] && ok "lcf has a flat disk" ||
	not_ok "lcf" "$(ls -la "$ds/lcf")"
expect 0 "power off lc" vmkctl -s esx1 vm power off -n lc
expect 0 "destroy lc" vmkctl -s esx1 vm destroy -n lc
expect 0 "then clone-lc goes" vmkctl -s esx1 vm snapshot remove -n sd --snapshot clone-lc
expect 0 "and sd can be destroyed" vmkctl -s esx1 vm destroy -n sd

# ---- a powered-off VM: disk-only snapshots, revert discards writes ----
expect 0 "vm create w (writes one pass, then powers off)" vmkctl -s esx1 vm create -n w -m 32 \
	--kernel "$ELF" --cmdline "disk blocks=256 passes=1 seed=3" --disk 8
sum0=$(sha256sum <"$ds/w/disk0.img")
expect 0 "snapshot the blank disk of the powered-off w" vmkctl -s esx1 vm snapshot create -n w --snapshot blank
expect 0 "power on w" vmkctl -s esx1 vm power on -n w
for _ in $(seq 100); do [[ $(names_on) == *"w:poweredOff"* ]] && break; sleep 0.1; done
grep -q "^disk pass 1 OK$" "$ds/w/serial.log" && ok "w wrote its pass into the delta" || not_ok "w's pass"
[[ $(sha256sum <"$ds/w/disk0.img") == "$sum0" ]] && ok "the frozen base did not change" || not_ok "base changed"
# a clone of a VM with snapshots is flat: its disk is the chain as it reads
expect 0 "clone w (a base and a delta) as wc" vmkctl -s esx1 vm clone -n w --name wc
run vmkctl -s esx1 --formatter json vm get -n wc
[[ $(json_get 'd["disks"][0].endswith("/wc/disk0.img")') == True ]] && [[ $(head -c 8 "$ds/wc/disk0.img") != VMKDLTA1 ]] &&
	ok "wc has one raw disk0.img" || not_ok "wc's disk" "$out"
sumc=$(sha256sum <"$ds/wc/disk0.img")
[[ $sumc != "$sum0" ]] && ok "holding w's written pass, not the blank base" || not_ok "wc is blank"
expect 0 "power on wc, which writes the same pass again" vmkctl -s esx1 vm power on -n wc
for _ in $(seq 100); do [[ $(names_on) == *"wc:poweredOff"* ]] && break; sleep 0.1; done
[[ $(sha256sum <"$ds/wc/disk0.img") == "$sumc" ]] && ok "which changes no byte: the flat copy was exact" ||
	not_ok "wc's copy differed from its rewrite"
run vmkctl -s esx1 --formatter json vm snapshot revert -n w --snapshot blank
[[ $rc -eq 0 && $(json_get 'd["power_state"]') == poweredOff ]] && ok "revert w to blank: poweredOff" ||
	not_ok "revert w" "$out" "$err"
expect 0 "remove blank: w has one raw disk again" vmkctl -s esx1 vm snapshot remove -n w --snapshot blank
run vmkctl -s esx1 --formatter json vm get -n w
[[ $(json_get 'd["disks"][0].endswith("/disk0.img")') == True && $(sha256sum <"$ds/w/disk0.img") == "$sum0" ]] &&
	ok "its disk is disk0.img, blank as at the snapshot" || not_ok "w after revert and remove" "$out"

# ---- bad input ----
expect 0 "vm create nd (no disks)" vmkctl -s esx1 vm create -n nd -m 32 --kernel "$ELF"
expect 2 "a snapshot of a VM with no disks -> 2" vmkctl -s esx1 vm snapshot create -n nd
expect_match "no disks" "the message says so" "$err"
expect 4 "revert to an unknown snapshot -> 4" vmkctl -s esx1 vm snapshot revert -n w --snapshot nosuch
expect_match "nosuch" "the message names it" "$err"
expect 4 "remove an unknown snapshot -> 4" vmkctl -s esx1 vm snapshot remove -n w --snapshot nosuch
expect 4 "a snapshot of an unknown VM -> 4" vmkctl -s esx1 vm snapshot create -n nosuch
expect 2 "--memory of a powered-off VM -> 2" vmkctl -s esx1 vm snapshot create -n w --memory
expect 0 "snapshot w as a" vmkctl -s esx1 vm snapshot create -n w --snapshot a
expect 5 "a second snapshot named a -> 5" vmkctl -s esx1 vm snapshot create -n w --snapshot a
expect 2 "a snapshot name with a slash -> 2" vmkctl -s esx1 vm snapshot create -n w --snapshot "x/y"
expect 2 "revert without --snapshot -> 2" vmkctl -s esx1 vm snapshot revert -n w
[[ $(snaps w) == "a::False:True" ]] && ok "after all that, w has snapshot a only" || not_ok "w's snapshots" "$(snaps w)"

t_done
