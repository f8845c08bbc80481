#!/usr/bin/env bash
# Fault tolerance through hostd and vmkctl in a three-host lab sharing a
# datastore, checkpoints over the faultToleranceLogging vmk: vm ft enable,
# status on both hosts, the operations a protected VM refuses; a failover
# test followed through `vm console --follow` (every heartbeat once, in
# order), the inventories of both hosts after it and the datastore lock;
# protection again to the third host, then the FT network cut between
# primary and secondary (exactly one copy runs on); the whole primary host
# killed with a memory verifier under FT (nothing corrupted, the secondary
# runs it) and the survivor re-protects it by itself (--secondary auto);
# a disk guest under FT (its writes on the secondary's own copy,
# read back after a failover); disable; bad input. Guests run on KVM
# where /dev/kvm opens, else on vmx's software CPU.
set -u
LAB_DIR=/tmp/vmk-test-ft-hosts
. "$(dirname "$0")/lib.sh"

t_accel
t_lab_up 3
follower=
cleanup_follower() { [[ -n $follower ]] && kill "$follower" 2>/dev/null; wait 2>/dev/null; }
trap 'cleanup_follower; t_cleanup' EXIT

names_on() { # HOST: the VMs it lists, with state and FT role
	run vmkctl -s "$1" --formatter json vm list
	json_get '" ".join(sorted(v["name"] + ":" + v["state"] + ":" + v["ft_role"] for v in d))'
}
ft_json() { # HOST VM: vm ft status as JSON in $out
	run vmkctl -s "$1" --formatter json vm ft status -n "$2"
}
beats() { awk '/^hb [0-9]+$/ { print $2 }' "${1:-$shared/hb/serial.log}"; }
unbroken() { awk 'NR > 1 && $1 != p + 1 { bad = 1 } { p = $1 } END { exit bad || NR < 2 }'; }
breaks() { awk 'NR > 1 && $1 != p + 1 { print "line " NR ": " p " then " $1 } { p = $1 }' | head -5; }
wait_line() { # FILE REGEX [TENTHS]
	for _ in $(seq "${3:-300}"); do grep -Eq "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
diag() { # VM: its vmx.log and the hosts' logs, for a failure's message
	tail -n 15 "$shared/$1/vmx.log"
	for k in 1 2 3; do grep -E "vm $1|vm\.ft" "$LAB_DIR/esx$k/hostd.out" | tail -n 6; done
}
wait_protected() { # HOST VM SECONDARY: until vm ft status says so (in $out)
	for _ in $(seq 600); do
		ft_json "$1" "$2"
		[[ $(json_get '(d["state"], d["secondary"])' 2>/dev/null) == "('protected', '$3')" ]] && return 0
		sleep 0.1
	done
	return 1
}
wait_names() { # HOST WANT [TENTHS]: until vm list on HOST says WANT
	for _ in $(seq "${3:-100}"); do [[ $(names_on "$1") == "$2" ]] && return 0; sleep 0.1; done
	return 1
}

# ---- the FT logging network: vmk3 on each host, tagged ----
for k in 1 2 3; do
	vmkctl -s esx$k network ip netstack add -N ftLogging >/dev/null &&
		vmkctl -s esx$k network ip interface add -i vmk3 -p "FT Logging" -N ftLogging -m 9000 >/dev/null &&
		vmkctl -s esx$k network ip interface ipv4 set -i vmk3 -t static -I 198.18.4.1$k \
			-N 255.255.255.0 >/dev/null &&
		vmkctl -s esx$k network ip interface tag add -i vmk3 -t faultToleranceLogging >/dev/null &&
		ok "esx$k: vmk3 on the FT logging network, tagged" ||
		not_ok "esx$k: vmk3 on the FT logging network"
done

# ---- a protected heartbeat ----
expect 0 "vm create hb on the shared datastore" vmkctl -s esx1 vm create -n hb -m 32 --kernel "$ELF" \
	--cmdline "heartbeat interval_ms=10" -d shared
expect 0 "power on hb" vmkctl -s esx1 vm power on -n hb
wait_line "$shared/hb/serial.log" "^hb 20$" && ok "hb beats" || not_ok "hb beats"

# bad input first: each refused, hb runs on unprotected
expect 2 "--secondary = the VM's own host -> 2" vmkctl -s esx1 vm ft enable -n hb --secondary esx1
expect_match "another host" "which says to name another host" "$err"
expect 4 "an unknown VM -> 4" vmkctl -s esx1 vm ft enable -n nosuch --secondary esx2
expect 5 "failover-test of an unprotected VM -> 5" vmkctl -s esx1 vm ft failover-test -n hb
expect 5 "disable of an unprotected VM -> 5" vmkctl -s esx1 vm ft disable -n hb
expect 2 "--epoch-ms 5000 -> 2" vmkctl -s esx1 vm ft enable -n hb --secondary esx2 --epoch-ms 5000
expect 2 "--detect-ms 20 with 10 ms epochs -> 2" vmkctl -s esx1 vm ft enable -n hb --secondary esx2 --detect-ms 20
expect_match "between 30" "which says the shortest detection time" "$err"
expect 2 "--secondary auto without a lab -> 2" "$VMK_BIN/vmkctl" -s nosuchhost vm ft enable -n hb --secondary auto
expect 0 "vm create off (powered off)" vmkctl -s esx1 vm create -n off -m 32 --kernel "$ELF" -d shared
expect 5 "a powered-off VM -> 5" vmkctl -s esx1 vm ft enable -n off --secondary esx2
expect_match "power it on" "which says to power it on" "$err"
# esx3 as older hardware: its hostd claims to lack nx
"$LAB" kill-host esx3 --dir "$LAB_DIR" >/dev/null && VMK_CPU_HIDE=nx "$LAB" start-host esx3 --dir "$LAB_DIR" >/dev/null
expect 5 "a secondary host that lacks a CPU feature of the guest -> 5" \
	vmkctl -s esx1 vm ft enable -n hb --secondary esx3
expect_match "esx3 cannot run VM hb.*lacks.*nx" "which names the host and the feature" "$err"
"$LAB" kill-host esx3 --dir "$LAB_DIR" >/dev/null && "$LAB" start-host esx3 --dir "$LAB_DIR" >/dev/null
expect 0 "vm create local on esx1's own datastore" vmkctl -s esx1 vm create -n local -m 32 --kernel "$ELF" \
	--cmdline "heartbeat interval_ms=100"
expect 0 "power on local" vmkctl -s esx1 vm power on -n local
expect 4 "a VM on a datastore the secondary does not see -> 4" \
	vmkctl -s esx1 vm ft enable -n local --secondary esx2
expect_match "same shared datastore" "which says it needs the shared datastore" "$err"
[[ $(names_on esx2) == "" ]] && ok "and esx2 lists no VM after the refusals" || not_ok "esx2 after refusals" "$(names_on esx2)"
expect 0 "power off local" vmkctl -s esx1 vm power off -n local
ft_json esx1 hb
[[ $(json_get '(d["state"], d["role"], d["primary"])') == "('notProtected', None, 'esx1')" ]] &&
	ok "vm ft status of an unprotected VM: notProtected" || not_ok "status unprotected" "$out"

run vmkctl -s esx1 --formatter json vm ft enable -n hb --secondary esx2
if [[ $rc -eq 0 ]]; then ok "vm ft enable hb --secondary esx2"; else not_ok "vm ft enable" "$err" "$out"; fi
[[ $(json_get '(d["vm"], d["state"], d["primary"], d["secondary"], d["epoch_ms"], d["role"],
	d["checkpoints"] >= 1, d["last_checkpoint_ms"] >= 0, d["lag_ms"] >= 0, d["detect_ms"])') == \
	"('hb', 'protected', 'esx1', 'esx2', 10, 'primary', True, True, True, 130)" ]] &&
	ok "its result has the fields of CLI.md: protected, esx1 -> esx2, 10 ms, detection 130 ms" || not_ok "enable result" "$out"
expect_match "^vmk3 198\.18\.4\.11 -> esx2 vmk3 198\.18\.4\.12:[0-9]+$" \
	"checkpoints go over the faultToleranceLogging vmks" "$(json_get 'd["network"]')"
sleep 0.5
ft_json esx1 hb
n1=$(json_get 'd["checkpoints"]')
sleep 1
ft_json esx1 hb
n2=$(json_get 'd["checkpoints"]')
[[ $n2 -gt $n1 ]] && ok "checkpoints go on ($n1, then $n2 a second later)" ||
	not_ok "checkpoints" "$n1 $n2" "$out" "$(tail -n 20 "$shared/hb/vmx.log")" "$(tail -n 20 "$LAB_DIR/esx2/hostd.out")"
[[ $(names_on esx1) == "hb:poweredOn:primary local:poweredOff: off:poweredOff:" &&
	$(names_on esx2) == "hb:ftSecondary:secondary" ]] &&
	ok "vm list: hb poweredOn primary on esx1, ftSecondary secondary on esx2" ||
	not_ok "vm list while protected" "esx1: $(names_on esx1)" "esx2: $(names_on esx2)"
ft_json esx2 hb
[[ $(json_get '(d["role"], d["primary"], d["secondary"], d["state"], d["checkpoints"] > 0)') == \
	"('secondary', 'esx1', 'esx2', 'protected', True)" ]] &&
	ok "vm ft status on esx2: the secondary of esx1's VM, with the checkpoints it applied" ||
	not_ok "status on esx2" "$out"
# esx2's hostd restarted: it finds its secondary again (ft.info)
"$LAB" kill-host esx2 --dir "$LAB_DIR" >/dev/null && "$LAB" start-host esx2 --dir "$LAB_DIR" >/dev/null
ft_json esx2 hb
[[ $(names_on esx2) == "hb:ftSecondary:secondary" &&
	$(json_get '(d["role"], d["primary"], d["state"])') == "('secondary', 'esx1', 'protected')" ]] &&
	ok "esx2's hostd restarted: it lists its secondary again" || not_ok "secondary after a hostd restart" "$(names_on esx2)" "$out"
expect 5 "live migration of a protected VM -> 5" vmkctl -s esx1 vm migrate -n hb --dest esx3
expect_match "vm ft disable first" "which says to disable FT first" "$err"
expect 5 "suspend of a protected VM -> 5" vmkctl -s esx1 vm power suspend -n hb
expect 5 "a snapshot of a protected VM -> 5" vmkctl -s esx1 vm snapshot create -n hb --memory
expect 5 "power off of the secondary -> 5" vmkctl -s esx2 vm power off -n hb
expect_match "fault tolerance secondary" "which says what it is" "$err"
expect 5 "failover-test on the secondary's host -> 5" vmkctl -s esx2 vm ft failover-test -n hb
expect 5 "a second enable -> 5" vmkctl -s esx1 vm ft enable -n hb --secondary esx3

# ---- failover test, followed on the console ----
vmkctl -s esx1 vm console -n hb --follow --since 0 >"$T_HOME/follow.out" 2>"$T_HOME/follow.err" &
follower=$!
sleep 0.5
run vmkctl -s esx1 --formatter json vm ft failover-test -n hb
if [[ $rc -eq 0 ]]; then ok "vm ft failover-test"; else not_ok "failover-test" "$err" "$(diag hb)"; fi
[[ $(json_get '(d["state"], d["primary"], d["secondary"])') == "('needSecondary', 'esx2', None)" ]] &&
	ok "its result: esx2 runs hb, which needs a secondary" || not_ok "failover-test result" "$out"
wait_names esx2 "hb:poweredOn:primary" && ok "esx2 lists hb poweredOn, primary" ||
	not_ok "esx2 after the failover" "$(names_on esx2)"
wait_names esx1 "local:poweredOff: off:poweredOff:" && ok "esx1 no longer lists hb" || not_ok "esx1 after the failover" "$(names_on esx1)"
run vmkctl -s esx2 --formatter json vm get -n hb
[[ $(json_get 'd["lock_owner"]') == esx2 ]] && ok "the datastore lock is esx2's" || not_ok "lock owner" "$out"
n=$(beats | tail -n 1)
wait_line "$shared/hb/serial.log" "^hb $((n + 50))$" && ok "hb beats on at esx2" || not_ok "hb after the failover"
wait_line "$T_HOME/follow.out" "^hb $((n + 50))$" 100 &&
	ok "vm console --follow went on across the failover" ||
	not_ok "console --follow" "$(tail -n 3 "$T_HOME/follow.out")" "$(cat "$T_HOME/follow.err")"
cleanup_follower
follower=
beats "$T_HOME/follow.out" | unbroken && ok "what it showed: every heartbeat once, in order ($(beats "$T_HOME/follow.out" | wc -l) lines)" ||
	not_ok "followed sequence" "$(beats "$T_HOME/follow.out" | breaks)"
beats | unbroken && ok "the serial log: every heartbeat once, in order" || not_ok "serial log" "$(beats | breaks)"

# ---- protected again, to esx3; then the FT network cut ----
# it needs a secondary now (failed over, not --secondary auto): disable
# lets it be, then it is protected again by hand
ft_json esx2 hb
[[ $(json_get 'd["state"]') == needSecondary ]] && ok "on esx2, hb needs a secondary (nothing re-protects it: it was not --secondary auto)" ||
	not_ok "needSecondary" "$out"
run vmkctl -s esx2 --formatter json vm ft disable -n hb
[[ $rc -eq 0 && $(json_get 'd["state"]') == notProtected ]] &&
	ok "vm ft disable of a VM that failed over and needs a secondary: notProtected" ||
	not_ok "disable needSecondary" "rc $rc" "$err" "$out"
run vmkctl -s esx2 --formatter json vm ft enable -n hb --secondary esx3
[[ $rc -eq 0 && $(json_get '(d["state"], d["primary"], d["secondary"])') == "('protected', 'esx2', 'esx3')" ]] &&
	ok "protected again by a secondary on esx3" || not_ok "enable to esx3" "$err" "$out"
"$LAB" link esx3 ft down --dir "$LAB_DIR" >/dev/null
running=""
for _ in $(seq 50); do
	a=$(names_on esx2) b=$(names_on esx3)
	[[ ($a == "hb:poweredOn:primary" && $b == "") || ($a == "" && $b == "hb:poweredOn:primary") ]] && break
	sleep 0.1
done
[[ $a == "hb:poweredOn:primary" ]] && running=esx2
[[ $b == "hb:poweredOn:primary" ]] && running=$running${running:+,}esx3
[[ $running == esx2 || $running == esx3 ]] && ok "FT network cut: exactly one copy runs on ($running)" ||
	not_ok "after the cut" "esx2: $a" "esx3: $b" "$(diag hb)"
"$LAB" link esx3 ft up --dir "$LAB_DIR" >/dev/null
n=$(beats | tail -n 1)
wait_line "$shared/hb/serial.log" "^hb $((n + 30))$" && beats | unbroken &&
	ok "and the log has every heartbeat once, in order" || not_ok "log after the cut" "$(beats | breaks)"
[[ -z $running || $running == *,* ]] && running=esx2

# ---- disable ----
other=esx1
[[ $running == esx2 ]] && other=esx3
expect 0 "protected to $other" vmkctl -s "$running" vm ft enable -n hb --secondary "$other"
run vmkctl -s "$running" --formatter json vm ft disable -n hb
[[ $rc -eq 0 && $(json_get '(d["state"], d["secondary"])') == "('notProtected', None)" ]] &&
	ok "vm ft disable: notProtected" || not_ok "disable" "$err" "$out"
want=""
[[ $other == esx1 ]] && want="local:poweredOff: off:poweredOff:"
wait_names "$other" "$want" && ok "the secondary on $other stopped and is gone" ||
	not_ok "$other after disable" "$(names_on "$other")"
[[ $(names_on "$running") == "hb:poweredOn:" ]] && ok "hb runs on, unprotected" || not_ok "after disable" "$(names_on "$running")"
expect 0 "and it can live-migrate again" vmkctl -s "$running" vm migrate -n hb --dest "$other"
expect 0 "power off hb" vmkctl -s "$other" vm power off -n hb

# ---- a NIC under FT: its transmits wait for the checkpoints ----
expect 0 "vm create nrx on esx3 (receives numbered frames)" vmkctl -s esx3 vm create -n nrx -m 32 \
	--kernel "$ELF" --cmdline "net role=recv count=4000 timeout_ms=60000" --nic "VM Network" -d shared
expect 0 "vm create ntx on esx1 (sends them)" vmkctl -s esx1 vm create -n ntx -m 32 --kernel "$ELF" \
	--cmdline "net role=send count=4000 interval_us=2000 wait_ms=30000" --nic "VM Network" -d shared
expect 0 "power on nrx" vmkctl -s esx3 vm power on -n nrx
expect 0 "power on ntx" vmkctl -s esx1 vm power on -n ntx
run vmkctl -s esx1 --formatter json vm ft enable -n ntx --secondary esx2
[[ $rc -eq 0 && $(json_get 'd["state"]') == protected ]] && ok "a VM with a NIC is protected" ||
	not_ok "enable ntx" "$err" "$out" "$(diag ntx)"
rx_count() { awk '/^net rx [0-9]+ / { n = $3 } END { print n + 0 }' "$shared/nrx/serial.log"; }
c0=$(rx_count)
sleep 1
c1=$(rx_count)
[[ $c1 -gt $c0 ]] && ok "its frames flow while protected ($c0, then $c1)" || not_ok "frames while protected" "$c0 $c1"
expect 0 "failover-test ntx" vmkctl -s esx1 vm ft failover-test -n ntx
wait_names esx2 "ntx:poweredOn:primary" && ok "esx2 runs ntx" || not_ok "ntx after failover" "$(names_on esx2)"
wait_line "$shared/nrx/serial.log" "final" 400 && ok "nrx got the sender's END" ||
	not_ok "nrx final" "$(tail -n 3 "$shared/nrx/serial.log")"
final=$(grep final "$shared/nrx/serial.log")
[[ $final =~ reorder\ 0 && $final != *dup* ]] &&
	ok "no frame came twice or out of order across the failover ($final)" || not_ok "frames" "$final"
gaps=$(awk '/final/ { print $5 }' "$shared/nrx/serial.log")
[[ -n $gaps && $gaps -le 50 ]] && ok "and at most a few were lost, as packets ($gaps)" || not_ok "gaps" "$final"
vmkctl -s esx2 vm power off -n ntx >/dev/null 2>&1 # the sender may have ended by itself
run vmkctl -s esx2 vm destroy -n ntx
[[ $rc -eq 0 ]] && run vmkctl -s esx3 vm destroy -n nrx
[[ $rc -eq 0 ]] && ok "ntx and nrx destroyed" || not_ok "ntx and nrx destroyed" "$err"

# ---- a disk guest under FT: its writes reach the secondary's own copy ----
expect 0 "vm create dk (16 MiB disk, a writer-verifier)" vmkctl -s esx1 vm create -n dk -m 32 \
	--kernel "$ELF" --cmdline "disk blocks=512 passes=0" --disk 16 -d shared
expect 0 "power on dk" vmkctl -s esx1 vm power on -n dk
wait_line "$shared/dk/serial.log" "^disk pass 2 OK" && ok "dk writes and verifies its disk" ||
	not_ok "dk passes" "$(tail -n 3 "$shared/dk/serial.log")"
run vmkctl -s esx1 --formatter json vm ft enable -n dk --secondary esx2
[[ $rc -eq 0 && $(json_get 'd["state"]') == protected ]] && ok "vm ft enable dk: a VM with a disk is protected" ||
	not_ok "enable dk" "$err" "$out" "$(diag dk)"
[[ -f $shared/dk/ft-esx2/disk0.img && $(stat -c %s "$shared/dk/ft-esx2/disk0.img") -eq $((16 << 20)) ]] &&
	ok "esx2 keeps its own copy of the disk, ft-esx2/disk0.img, 16 MiB" ||
	not_ok "secondary's disk copy" "$(ls -la "$shared/dk" "$shared/dk/ft-esx2" 2>&1)"
n=$(grep -c "^disk pass" "$shared/dk/serial.log")
wait_line "$shared/dk/serial.log" "^disk pass $((n + 2)) OK" && ok "dk writes on while protected" ||
	not_ok "dk passes while protected" "$(tail -n 3 "$shared/dk/serial.log")"
run vmkctl -s esx1 vm ft failover-test -n dk
[[ $rc -eq 0 ]] && wait_names esx2 "dk:poweredOn:primary" && ok "failover-test: esx2 runs dk" ||
	not_ok "dk failover" "$err" "$(names_on esx2)" "$(diag dk)"
# the guest goes on from the last checkpoint and reads back the blocks of
# its pass written before it: only the replicated writes hold them
n=$(grep -c "^disk pass" "$shared/dk/serial.log")
wait_line "$shared/dk/serial.log" "^disk pass $((n + 3)) OK" && ! grep -q CORRUPT "$shared/dk/serial.log" &&
	ok "dk reads back every block it wrote, at esx2, on its copy of the disk" ||
	not_ok "dk after the failover" "$(grep -m3 CORRUPT "$shared/dk/serial.log")" "$(tail -n 3 "$shared/dk/serial.log")"
grep -q 'path = "ft-esx2/disk0.img"' "$shared/dk/dk.vmx" && ok "dk.vmx names esx2's copy now" ||
	not_ok "dk.vmx after the failover" "$(grep -A2 disks "$shared/dk/dk.vmx")"
run vmkctl -s esx2 --formatter json vm get -n dk
[[ $out == *ft-esx2/disk0.img* ]] && ok "and so does vm get on esx2" || not_ok "vm get dk" "$out"
# protected again, to esx1: a fresh copy there, gone with the secondary
expect 0 "vm ft enable dk --secondary esx1 (back)" vmkctl -s esx2 vm ft enable -n dk --secondary esx1
[[ -f $shared/dk/ft-esx1/disk0.img ]] && ok "esx1 keeps a fresh copy, ft-esx1/disk0.img" ||
	not_ok "esx1's copy" "$(ls -la "$shared/dk" 2>&1)"
expect 0 "vm ft disable dk" vmkctl -s esx2 vm ft disable -n dk
for _ in $(seq 50); do [[ -e $shared/dk/ft-esx1 ]] || break; sleep 0.1; done
[[ ! -e $shared/dk/ft-esx1 && -s $shared/dk/ft-esx2/disk0.img ]] &&
	ok "disable: esx1's copy goes with its secondary; dk runs on from ft-esx2" ||
	not_ok "copies after disable" "$(ls -la "$shared/dk" 2>&1)"
expect 0 "power off dk" vmkctl -s esx2 vm power off -n dk
! grep -q CORRUPT "$shared/dk/serial.log" && ok "dk never saw CORRUPT" ||
	not_ok "dk CORRUPT" "$(grep -m3 CORRUPT "$shared/dk/serial.log")"
expect 0 "vm destroy dk (on esx2, which runs it now)" vmkctl -s esx2 vm destroy -n dk
# the secondary's copies on a datastore of its own host
expect 0 "vm create dl (8 MiB disk)" vmkctl -s esx1 vm create -n dl -m 32 --kernel "$ELF" \
	--cmdline "disk blocks=256 passes=0" --disk 8 -d shared
expect 0 "power on dl" vmkctl -s esx1 vm power on -n dl
wait_line "$shared/dl/serial.log" "^disk pass 2 OK" || not_ok "dl passes" "$(tail -n 3 "$shared/dl/serial.log")"
expect 4 "--secondary-datastore that esx2 lacks -> 4" vmkctl -s esx1 vm ft enable -n dl --secondary esx2 \
	--secondary-datastore nosuch
expect_match "no datastore named nosuch" "which names it" "$err"
[[ $(names_on esx2) != *dl:* ]] && ok "and esx2 lists no dl" || not_ok "esx2 after the refusal" "$(names_on esx2)"
expect 0 "vm ft enable dl --secondary esx2 --secondary-datastore datastore1" \
	vmkctl -s esx1 vm ft enable -n dl --secondary esx2 --secondary-datastore datastore1
local_copy=$LAB_DIR/esx2/datastore1/dl/ft-esx2/disk0.img
[[ -f $local_copy ]] && ok "esx2 keeps its copy on its own datastore1" ||
	not_ok "copy on datastore1" "$(ls -laR "$LAB_DIR/esx2/datastore1" 2>&1 | head)"
run vmkctl -s esx1 vm ft failover-test -n dl
n=$(grep -c "^disk pass" "$shared/dl/serial.log")
[[ $rc -eq 0 ]] && wait_names esx2 "dl:poweredOn:primary" &&
	wait_line "$shared/dl/serial.log" "^disk pass $((n + 2)) OK" && ! grep -q CORRUPT "$shared/dl/serial.log" &&
	ok "failed over: dl runs on esx2 from datastore1 and reads back every block" ||
	not_ok "dl failover" "$err" "$(names_on esx2)" "$(tail -n 3 "$shared/dl/serial.log")" "$(diag dl)"
grep -qF "path = \"$local_copy\"" "$shared/dl/dl.vmx" && ok "dl.vmx names the copy on esx2's datastore1" ||
	not_ok "dl.vmx" "$(grep -A2 disks "$shared/dl/dl.vmx")"
expect 0 "power off dl" vmkctl -s esx2 vm power off -n dl
expect 0 "vm destroy dl" vmkctl -s esx2 vm destroy -n dl
# a snapshot layer is not copied: refused, nothing left on esx2
expect 0 "vm create sn (8 MiB disk)" vmkctl -s esx1 vm create -n sn -m 32 --kernel "$ELF" \
	--cmdline "heartbeat interval_ms=100" --disk 8 -d shared
expect 0 "power on sn" vmkctl -s esx1 vm power on -n sn
expect 0 "snapshot sn" vmkctl -s esx1 vm snapshot create -n sn --snapshot s1
expect 5 "vm ft enable of a VM with snapshots -> 5" vmkctl -s esx1 vm ft enable -n sn --secondary esx2
expect_match "remove its snapshots first" "which says to remove its snapshots" "$err"
[[ ! -e $shared/sn/ft-esx2 && $(names_on esx2) != *sn:* ]] && ok "and esx2 has no copy and lists no sn" ||
	not_ok "after the snapshot refusal" "$(names_on esx2)" "$(ls "$shared/sn")"
expect 0 "power off sn" vmkctl -s esx1 vm power off -n sn
expect 0 "vm destroy sn" vmkctl -s esx1 vm destroy -n sn

# ---- the whole primary host killed, a memory verifier under FT ----
expect 0 "vm create vf (verify, 64 MiB)" vmkctl -s esx1 vm create -n vf -m 96 --kernel "$ELF" \
	--cmdline "verify mib=64" -d shared
expect 0 "power on vf" vmkctl -s esx1 vm power on -n vf
wait_line "$shared/vf/serial.log" "^verify pass 2 " && ok "vf verifies" || not_ok "vf" "$(tail -n 3 "$shared/vf/serial.log")"
run vmkctl -s esx1 --formatter json vm ft enable -n vf --secondary auto
[[ $rc -eq 0 && $(json_get 'd["secondary"]') == esx2 ]] &&
	ok "vm ft enable vf --secondary auto: esx2, the first other host" || not_ok "enable vf auto" "$err" "$out"
sleep 1
"$LAB" kill-host esx1 --vms --dir "$LAB_DIR" >/dev/null
"$LAB" link esx1 ft down --dir "$LAB_DIR" >/dev/null
wait_names esx2 "vf:poweredOn:primary" && ok "esx1 killed (hostd, vmx, FT link): esx2 runs vf" ||
	not_ok "esx2 after esx1 died" "$(names_on esx2)" "$(diag vf)"
n=$(grep -c "^verify pass" "$shared/vf/serial.log")
wait_line "$shared/vf/serial.log" "^verify pass $((n + 2)) " 300 && ok "vf verifies on at esx2" ||
	not_ok "vf after the failover" "$(tail -n 3 "$shared/vf/serial.log")"
! grep -q CORRUPT "$shared/vf/serial.log" && ok "and never saw CORRUPT" ||
	not_ok "CORRUPT" "$(grep -m3 CORRUPT "$shared/vf/serial.log")"
# re-protect without being asked: esx2 asks the cluster's other hosts in
# order; esx1 is dead, esx3 takes the secondary
if wait_protected esx2 vf esx3; then
	ok "vf protected again by esx2 itself: esx1 is dead, esx3 holds the secondary"
else
	not_ok "re-protect after the failover" "$out" "$(grep -E "vf|reprotect" "$LAB_DIR/esx2/hostd.out" | tail -n 8)"
fi
run vmkctl -s esx2 --formatter json task list
[[ $(json_get '[(t["op"], t["state"]) for t in d if t["op"] == "vm.ft.reprotect"][-1]') == \
	"('vm.ft.reprotect', 'success')" ]] && ok "as the task vm.ft.reprotect on esx2" ||
	not_ok "reprotect task" "$out"
[[ $(names_on esx3) == "vf:ftSecondary:secondary" ]] && ok "esx3 lists vf as its secondary" ||
	not_ok "esx3 after the re-protect" "$(names_on esx3)"

# ---- disable while a failover runs: refused or too late, never two copies ----
run vmkctl -s esx2 --formatter json vm get -n vf
pid=$(json_get 'd["pid"]')
kill -9 "$pid"
run vmkctl -s esx2 vm ft disable -n vf
# refused while esx2 still lists vf, or vf is no longer esx2's at all
[[ ($rc -eq 5 && $err == *"takes over"*) || $rc -eq 4 ]] &&
	ok "disable right after the primary died: refused, the secondary takes over" ||
	not_ok "disable during the failover" "rc $rc" "$out" "$err"
wait_names esx3 "vf:poweredOn:primary" && ok "the secondary on esx3 took over" ||
	not_ok "after disable during failover" "esx3: $(names_on esx3)" "$(diag vf)"
# and re-protects it in turn: esx1 is still dead, esx2 lets its primary
# go and takes the secondary
wait_protected esx3 vf esx2 && [[ $(names_on esx2) == "vf:ftSecondary:secondary" ]] &&
	ok "esx3 re-protects vf onto esx2, which lists it as its secondary only" ||
	not_ok "second re-protect" "$out" "esx2: $(names_on esx2)" "$(grep -E "vf" "$LAB_DIR/esx3/hostd.out" | tail -n 8)"
! grep -q CORRUPT "$shared/vf/serial.log" && ok "vf never saw CORRUPT" ||
	not_ok "CORRUPT" "$(grep -m3 CORRUPT "$shared/vf/serial.log")"
# disabled, it stays unprotected: nothing re-protects it
expect 0 "vm ft disable vf" vmkctl -s esx3 vm ft disable -n vf
sleep 1.5
ft_json esx3 vf
[[ $(json_get 'd["state"]') == notProtected && $(names_on esx2) == "" ]] &&
	ok "disabled: notProtected, and no secondary comes back" || not_ok "after disable" "$out" "$(names_on esx2)"
expect 0 "power off vf" vmkctl -s esx3 vm power off -n vf

t_done
