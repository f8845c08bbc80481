#!/usr/bin/env bash
# VMkernel networking in a two-host lab with separate management, vMotion
# and FT networks: netstacks as namespaces, vmk adapters on port groups,
# tags, MTU limits, vmkping with don't-fragment, persistence across a hostd
# restart (and a bad line in network.cfg), and a migration whose stream
# runs in the vmotion netstack, not the management one.
set -u
LAB_DIR=/tmp/vmk-test-network
. "$(dirname "$0")/lib.sh"

t_accel
t_lab_up 2

# ifs HOST: the vmk adapters, one line each, every field (a config snapshot)
ifs() {
	run vmkctl -s "$1" --formatter json network ip interface list
	json_get '"\n".join("%s %s %s %s %s %s %s/%s %s" % (i["name"], i["portgroup"], i["netstack"],
		i["mac"], i["mtu"], i["enabled"], i["ipv4_address"], i["ipv4_netmask"], ",".join(i["tags"]))
		for i in d)'
}

# ---- a fresh host: vmk0 on the Management Network, three netstacks ----
run vmkctl -s esx1 --formatter json network ip interface list
[[ $(json_get '[(i["name"], i["portgroup"], i["netstack"], i["ipv4_address"], i["tags"], i["mtu"],
	len(i["mac"]), i["mac"][:9]) for i in d]') == \
	"[('vmk0', 'Management Network', 'defaultTcpipStack', '198.18.0.11', ['Management'], 1500, 17, '00:50:56:')]" ]] &&
	ok "vmk0 exists from the start: Management, defaultTcpipStack, a 00:50:56 MAC as on ESXi" ||
	not_ok "vmk0 of a fresh host" "$out"
run vmkctl -s esx1 --formatter json network ip netstack list
[[ $(json_get '" ".join(s["name"] + "=" + s["namespace"] for s in d)') == \
	"defaultTcpipStack= vmotion=vmk-esx1-vmotion vSphereProvisioning=vmk-esx1-vSphereProvisioning" ]] &&
	ok "netstacks defaultTcpipStack, vmotion, vSphereProvisioning" || not_ok "netstack list" "$out"
ip netns list | grep -qw vmk-esx1-vmotion && ok "the vmotion netstack is a namespace (ip netns list)" ||
	not_ok "vmk-esx1-vmotion in ip netns list" "$(ip netns list)"
run vmkctl -s esx1 --formatter json network vswitch standard portgroup list
[[ $(json_get '" ".join("%s:%s:%s" % (p["name"].replace(" ", "_"), ",".join(p["uplinks"]), p["mtu"]) for p in d)') == \
	"Management_Network:mgmt0:1500 VM_Network:vmnet0:1500 vMotion:vmotion0:9000 Provisioning:prov0:1500 FT_Logging:ft0:9000" ]] &&
	ok "five port groups, each on its lab network's uplink" || not_ok "portgroup list" "$out"

# ---- vmk1 on the vmotion netstack, MTU 9000, on both hosts ----
for k in 1 2; do
	expect 0 "esx$k: interface add vmk1 -p vMotion -N vmotion -m 9000" \
		vmkctl -s esx$k network ip interface add -i vmk1 -p vMotion -N vmotion -m 9000
	expect 0 "esx$k: ipv4 set vmk1 198.18.2.1$k/24" \
		vmkctl -s esx$k network ip interface ipv4 set -i vmk1 -t static -I 198.18.2.1$k -N 255.255.255.0
	expect 0 "esx$k: tag add vmk1 VMotion" vmkctl -s esx$k network ip interface tag add -i vmk1 -t VMotion
done
ip netns exec vmk-esx1-vmotion ip -4 -o addr show dev vmk1 | grep -q "198.18.2.11/24" &&
	ok "vmk1's address is in the vmotion namespace" || not_ok "vmk1 in vmk-esx1-vmotion" \
	"$(ip netns exec vmk-esx1-vmotion ip -o addr 2>&1)"
! ip netns exec vmk-esx1 ip -o link show dev vmk1 >/dev/null 2>&1 &&
	ok "and not in the management one" || not_ok "vmk1 leaked into vmk-esx1"
run vmkctl -s esx1 --formatter json network ip interface tag get -i vmk1
[[ $(json_get 'd["tags"]') == "['VMotion']" ]] && ok "tag get shows VMotion" || not_ok "tag get" "$out"
run vmkctl -s esx1 --formatter json network ip interface ipv4 get -i vmk1
[[ $(json_get '(d["ipv4_type"], d["ipv4_address"], d["ipv4_netmask"])') == \
	"('static', '198.18.2.11', '255.255.255.0')" ]] && ok "ipv4 get" || not_ok "ipv4 get" "$out"
# a gateway: the default route of that netstack only
expect 0 "ipv4 set with -g 198.18.2.1" vmkctl -s esx1 network ip interface ipv4 set -i vmk1 -t static \
	-I 198.18.2.11 -N 255.255.255.0 -g 198.18.2.1
[[ $(ip netns exec vmk-esx1-vmotion ip -4 route show default) == "default via 198.18.2.1 dev vmk1"* ]] &&
	ok "the vmotion netstack's default route goes via 198.18.2.1" ||
	not_ok "default route in vmk-esx1-vmotion" "$(ip netns exec vmk-esx1-vmotion ip -4 route 2>&1)"
[[ -z $(ip netns exec vmk-esx1 ip -4 route show default) ]] && ok "the management netstack has none of it" ||
	not_ok "default route leaked" "$(ip netns exec vmk-esx1 ip -4 route)"
run vmkctl -s esx1 --formatter json network ip interface ipv4 get -i vmk1
[[ $(json_get 'd["ipv4_gateway"]') == 198.18.2.1 ]] && ok "ipv4 get shows the gateway" || not_ok "gateway in ipv4 get" "$out"
expect 2 "a gateway off the subnet -> 2" vmkctl -s esx1 network ip interface ipv4 set -i vmk1 -t static \
	-I 198.18.2.11 -N 255.255.255.0 -g 198.18.0.1
expect_match "198.18.0.1.*subnet" "the message names the gateway and the subnet rule" "$err"

# ---- vmkping ----
run vmkctl -s esx1 --formatter json network diag ping -I vmk1 -H 198.18.2.12 -d -s 8972 -c 2
[[ $rc -eq 0 && $(json_get '(d["netstack"], d["received"] >= 1, d["size"])') == "('vmotion', True, 8972)" ]] &&
	ok "ping -d -s 8972 over the 9000-MTU vMotion path succeeds" || not_ok "jumbo ping" "$out" "$err"
run vmkctl -s esx1 network diag ping -I vmk0 -H 198.18.0.12 -d -s 8972 -c 1
[[ $rc -eq 1 ]] && ok "ping -d -s 8972 on the 1500-MTU management path fails (exit 1)" ||
	not_ok "ping -d on 1500 MTU" "rc=$rc" "$out" "$err"
expect_match "Message too long.*MTU 1500" "the message is the fragmentation failure, with the path MTU" "$err"
expect 0 "ping -s 1472 -d fits the 1500-MTU path" vmkctl -s esx1 network diag ping -I vmk0 -H 198.18.0.12 -d -s 1472 -c 1
run vmkctl -s esx1 network diag ping -I vmk1 -H 198.18.0.12 -c 1
[[ $rc -ne 0 ]] && ok "the vmotion netstack has no route to the management network" ||
	not_ok "vmotion netstack isolation" "$out"
expect 4 "ping from an unknown vmk -> 4" vmkctl -s esx1 network diag ping -I vmk7 -H 198.18.2.12
expect 2 "ping of a name, not an address -> 2" vmkctl -s esx1 network diag ping -I vmk1 -H esx2

# ---- bad input: clear error, config unchanged ----
before=$(ifs esx1)
expect 5 "duplicate vmk name -> 5" vmkctl -s esx1 network ip interface add -i vmk1 -p vMotion -N vmotion
expect 4 "unknown port group -> 4" vmkctl -s esx1 network ip interface add -i vmk5 -p Nowhere
expect_match "Nowhere" "the message names the port group" "$err"
expect 4 "unknown netstack -> 4" vmkctl -s esx1 network ip interface add -i vmk5 -p vMotion -N nosuch
expect_match "nosuch" "the message names the netstack" "$err"
expect 2 "a bad vmk name -> 2" vmkctl -s esx1 network ip interface add -i eth5 -p vMotion
expect 2 "MTU 100000 -> 2" vmkctl -s esx1 network ip interface add -i vmk5 -p vMotion -m 100000
expect 2 "MTU 9000 above the 1500 of the management uplink -> 2" \
	vmkctl -s esx1 network ip interface add -i vmk5 -p "Management Network" -m 9000
expect_match "9000.*1500" "the message names both MTUs" "$err"
expect 2 "set -m 9000 on vmk0 (uplink 1500) -> 2" vmkctl -s esx1 network ip interface set -i vmk0 -m 9000
expect 2 "invalid IP -> 2" vmkctl -s esx1 network ip interface ipv4 set -i vmk1 -t static -I 198.18.2.300 -N 255.255.255.0
expect_match "198.18.2.300" "the message names the address" "$err"
expect 2 "invalid netmask -> 2" vmkctl -s esx1 network ip interface ipv4 set -i vmk1 -t static -I 198.18.2.11 -N 255.0.255.0
expect 2 "a network address -> 2" vmkctl -s esx1 network ip interface ipv4 set -i vmk1 -t static -I 198.18.2.0 -N 255.255.255.0
expect 2 "unknown tag -> 2" vmkctl -s esx1 network ip interface tag add -i vmk1 -t Bogus
expect 5 "removing the last Management tag -> 5" vmkctl -s esx1 network ip interface tag remove -i vmk0 -t Management
expect 5 "removing the last Management vmk -> 5" vmkctl -s esx1 network ip interface remove -i vmk0
expect 5 "removing a built-in netstack -> 5" vmkctl -s esx1 network ip netstack remove -N vmotion
expect 4 "removing an unknown netstack -> 4" vmkctl -s esx1 network ip netstack remove -N nosuch
[[ $(ifs esx1) == "$before" ]] && ok "after all that, the adapters are unchanged" ||
	not_ok "adapters changed by failed calls" "before: $before" "after: $(ifs esx1)"

# ---- FT tag: one per host ----
expect 0 "vmk2 on FT Logging" vmkctl -s esx1 network ip interface add -i vmk2 -p "FT Logging" -m 9000
expect 0 "tag vmk2 faultToleranceLogging" vmkctl -s esx1 network ip interface tag add -i vmk2 -t faultToleranceLogging
expect 5 "a second faultToleranceLogging vmk -> 5" vmkctl -s esx1 network ip interface tag add -i vmk1 -t faultToleranceLogging
expect_match "vmk2" "the message names the one that has it" "$err"

# ---- custom netstacks ----
expect 0 "netstack add lab1" vmkctl -s esx1 network ip netstack add -N lab1
ip netns list | grep -qw vmk-esx1-lab1 && ok "lab1 is namespace vmk-esx1-lab1" || not_ok "vmk-esx1-lab1"
expect 5 "netstack add lab1 again -> 5" vmkctl -s esx1 network ip netstack add -N lab1
expect 0 "vmk3 in lab1" vmkctl -s esx1 network ip interface add -i vmk3 -p Provisioning -N lab1
expect 5 "removing a netstack that has interfaces -> 5" vmkctl -s esx1 network ip netstack remove -N lab1
expect_match "vmk3" "the message names its interfaces" "$err"
expect 0 "remove vmk3" vmkctl -s esx1 network ip interface remove -i vmk3
expect 0 "then the netstack goes" vmkctl -s esx1 network ip netstack remove -N lab1
! ip netns list | grep -qw vmk-esx1-lab1 && ok "and its namespace with it" || not_ok "vmk-esx1-lab1 left"

# ---- persistence: a hostd restart brings everything back ----
expect 0 "disable vmk2" vmkctl -s esx1 network ip interface set -i vmk2 -e false
before=$(ifs esx1)
"$LAB" kill-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
"$LAB" start-host esx1 --dir "$LAB_DIR" >"$T_HOME/start.log" 2>&1 ||
	not_ok "hostd restart" "$(cat "$T_HOME/start.log")"
[[ $(ifs esx1) == "$before" ]] && ok "after a hostd restart the adapters are the same (MACs too)" ||
	not_ok "adapters after restart" "before: $before" "after: $(ifs esx1)"
expect 0 "and vmk1 still reaches esx2" vmkctl -s esx1 network diag ping -I vmk1 -H 198.18.2.12 -c 1
# a bad entry in network.cfg: logged with its line and fix, the rest comes up
cfg=$LAB_DIR/esx1/state/network.cfg
sed -i 's/^);$/,\n  { name = "vmk9"; portgroup = "Nowhere"; netstack = "vmotion"; mtu = 1500; }\n);/' "$cfg"
grep -q vmk9 "$cfg" && ok "a bad vmk9 entry written to network.cfg" || not_ok "editing network.cfg" "$(cat "$cfg")"
"$LAB" kill-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
"$LAB" start-host esx1 --dir "$LAB_DIR" >"$T_HOME/start.log" 2>&1 &&
	ok "hostd starts with the bad line" || not_ok "hostd with a bad network.cfg line" "$(cat "$T_HOME/start.log")"
grep -Eq "network.cfg:[0-9]+: vmk9: portgroup \"Nowhere\".*skipped" "$LAB_DIR/esx1/state/hostd.log" &&
	ok "the log names the file, line and problem" ||
	not_ok "network.cfg warning" "$(grep -i network "$LAB_DIR/esx1/state/hostd.log" | tail -5)"
[[ $(ifs esx1) == "$before" ]] && ok "the rest came up as before" ||
	not_ok "adapters with a bad line" "before: $before" "after: $(ifs esx1)"

# ---- a migration's stream runs in the vmotion netstack ----
expect 0 "vm create mv" vmkctl -s esx1 vm create -n mv -m 128 --kernel "$ELF" \
	--cmdline "verify mib=64" -d shared
expect 0 "power on mv" vmkctl -s esx1 vm power on -n mv
for _ in $(seq 100); do grep -q filled "$shared/mv/serial.log" 2>/dev/null && break; sleep 0.1; done
vmkctl -s esx1 --formatter json vm migrate -n mv --dest esx2 --max-bandwidth 16 >"$T_HOME/m.out" 2>"$T_HOME/m.err" &
mpid=$!
seen="" mgmt=""
for _ in $(seq 150); do
	seen=$(ip netns exec vmk-esx2-vmotion ss -Htn state established 2>/dev/null)
	[[ -n $seen ]] && break
	sleep 0.1
done
mgmt=$(ip netns exec vmk-esx2 ss -Htn state established 2>/dev/null | grep -v ':4443' || true)
wait $mpid
mrc=$?
[[ $seen == *198.18.2.12:*198.18.2.11:* ]] && ok "ss in vmk-esx2-vmotion shows the stream 198.18.2.11 -> 198.18.2.12" ||
	not_ok "stream in the vmotion netstack" "vmotion: $seen"
[[ -z $mgmt ]] && ok "and the management netstack carries nothing but hostd's RPC" ||
	not_ok "traffic in the management netstack" "$mgmt"
out=$(cat "$T_HOME/m.out")
[[ $mrc -eq 0 && $(json_get 'd["stream"]') == "vmk1 198.18.2.11 -> esx2 vmk1 198.18.2.12:"* ]] &&
	ok "the migration succeeds; its result names both vmk1 adapters" ||
	not_ok "migration over vmk1" "rc=$mrc" "$out" "$(cat "$T_HOME/m.err")"
# without VMotion tags, the stream falls back to Management, and says so
expect 0 "untag esx1's vmk1" vmkctl -s esx1 network ip interface tag remove -i vmk1 -t VMotion
expect 0 "untag esx2's vmk1" vmkctl -s esx2 network ip interface tag remove -i vmk1 -t VMotion
run vmkctl -s esx2 --formatter json vm migrate -n mv --dest esx1
[[ $rc -eq 0 && $(json_get 'd["stream"]') == "vmk0 198.18.0.12 -> esx1 vmk0 198.18.0.11:"* ]] &&
	ok "back to esx1 over the vmk0 adapters" || not_ok "migration back" "$out" "$err"
[[ $(json_get 'd.get("network_note", "")') == "esx1: no VMotion vmk, using Management vmk0; esx2: Management vmk0 too" ]] &&
	ok "the task says it fell back to the Management vmk0" || not_ok "fallback note" "$out"
expect 0 "power off mv" vmkctl -s esx1 vm power off -n mv

# ---- VM NICs: two VMs on the VM Network exchange numbered frames; the
# receiver moves to the sender's host during the stream ----
expect 0 "vm create nbad with a NIC on port group Nowhere" vmkctl -s esx1 vm create -n nbad -m 32 \
	--kernel "$ELF" --cmdline hello --nic Nowhere -d shared
expect 1 "its power on fails -> 1" vmkctl -s esx1 vm power on -n nbad
expect_match 'no port group "Nowhere"' "the message names the port group" "$err"
expect 0 "destroy nbad" vmkctl -s esx1 vm destroy -n nbad
expect 0 "vm create nrx (recv) with a NIC on VM Network" vmkctl -s esx2 vm create -n nrx -m 32 \
	--kernel "$ELF" --cmdline "net role=recv timeout_ms=30000" --nic "VM Network" -d shared
expect 0 "vm create ntx (send)" vmkctl -s esx1 vm create -n ntx -m 32 --kernel "$ELF" \
	--cmdline "net role=send count=6000 interval_us=1000 wait_ms=20000" --nic "VM Network" -d shared
expect 0 "power on nrx on esx2" vmkctl -s esx2 vm power on -n nrx
expect 0 "power on ntx on esx1" vmkctl -s esx1 vm power on -n ntx
wait_rx() { # REGEX [TENTHS]: bounded
	for _ in $(seq "${2:-200}"); do grep -Eq "$1" "$shared/nrx/serial.log" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
wait_rx "^net rx [1-9][0-9]{2,} " && ok "frames flow from ntx (esx1) to nrx (esx2) across the VM Network" ||
	not_ok "VM to VM frames" "$(tail -3 "$shared/nrx/serial.log")" "$(tail -3 "$shared/ntx/serial.log")"
run vmkctl -s esx2 --formatter json vm migrate -n nrx --dest esx1
[[ $rc -eq 0 ]] && ok "nrx migrates to esx1 while it receives" || not_ok "nrx migration" "$err"
final=""
wait_rx "final" 400 && final=$(grep final "$shared/nrx/serial.log" | tail -n 1)
if [[ $final =~ ^net\ rx\ ([0-9]+)\ gaps\ ([0-9]+)\ reorder\ ([0-9]+) ]]; then
	got=${BASH_REMATCH[1]} gaps=${BASH_REMATCH[2]} reorder=${BASH_REMATCH[3]}
	echo "# VM-to-VM stream across the receiver's live migration: $got frames received, $gaps lost (1 frame/ms: ~$gaps ms gap), $reorder reordered"
	[[ $reorder -eq 0 ]] && ok "no frame reordered" || not_ok "reordering" "$final"
	[[ $got -ge 3000 && $((got + gaps)) -eq 6000 ]] && ok "the stream went on after the switchover (all 6000 accounted for)" ||
		not_ok "frames after the switchover" "$final"
else
	not_ok "nrx's final count" "$(tail -5 "$shared/nrx/serial.log")"
fi
run vmkctl -s esx1 vm power off -n ntx # it may have powered itself off
run vmkctl -s esx1 vm power off -n nrx
ip netns exec vmk-esx1 ip -o link show type tun 2>/dev/null | grep -q vmt &&
	not_ok "taps left after power off" "$(ip netns exec vmk-esx1 ip -o link show type tun)" ||
	ok "their taps are gone after power off"

grep -E "BUG|panic|Assertion|Segmentation" "$LAB_DIR"/esx*/hostd.out >/dev/null &&
	not_ok "hostd.out is clean" "$(grep -E "BUG|panic|Assertion|Segmentation" "$LAB_DIR"/esx*/hostd.out)" ||
	ok "hostd.out is clean"
t_done
