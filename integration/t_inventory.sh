#!/usr/bin/env bash
# VM inventory through vmkctl: create, list, get, destroy; persistence across
# a hostd restart; a corrupt .vmx listed as invalid while hostd serves the
# rest; bad names and sizes refused. (Powering VMs on needs vmx on KVM.)
set -u
. "$(dirname "$0")/lib.sh"

if ! "$LAB" up --hosts 1 --dir "$LAB_DIR" >"$T_HOME/lab.log" 2>&1; then
	not_ok "lab up" "$(tail -n 30 "$T_HOME/lab.log")"
	t_done
	exit 1
fi
ok "lab up with 1 host"
ELF=$(cd "$VMK_BIN/../guest" && pwd)/vmk-guest.elf
ds1=$LAB_DIR/esx1/datastore1

expect 0 "vm create" vmkctl -s esx1 --formatter json vm create -n vm1 -m 64 --kernel "$ELF" \
	--cmdline "heartbeat interval_ms=10" --disk 16 --nic "VM Network"
[[ $(json_get '(d["state"], d["memory_mib"], d["vcpus"], d["nics"], d["datastore"])') == \
	"('poweredOff', 64, 1, ['VM Network'], 'datastore1')" ]] && ok "create answers with the VM" ||
	not_ok "create answer" "$out"
[[ -f $ds1/vm1/vm1.vmx ]] && ok "vm1.vmx written in the datastore" || not_ok "vmx file"
read -r size blocks < <(stat -c '%s %b' "$ds1/vm1/disk0.img")
[[ $size -eq $((16 << 20)) && $blocks -lt 64 ]] && ok "16 MiB disk created sparse" ||
	not_ok "sparse disk" "size $size blocks $blocks"
"$VMK_BIN/vmx" --check -c "$ds1/vm1/vm1.vmx" >/dev/null 2>&1 && ok "vmx accepts the created .vmx" ||
	not_ok "vmx --check of the created VM" "$("$VMK_BIN/vmx" --check -c "$ds1/vm1/vm1.vmx" 2>&1)"

expect 0 "vm list" vmkctl -s esx1 --formatter json vm list
[[ $(json_get '[(v["name"], v["state"], v["host"]) for v in d]') == "[('vm1', 'poweredOff', 'esx1')]" ]] &&
	ok "list shows vm1 on esx1" || not_ok "list" "$out"
[[ $(json_get 'sorted(d[0].keys())') == "['ft_role', 'host', 'memory_mib', 'name', 'state', 'vcpus']" ]] &&
	ok "list columns are those of CLI.md" || not_ok "list columns" "$out"
expect 0 "vm get" vmkctl -s esx1 --formatter json vm get -n vm1
[[ $(json_get 'len(d["uuid"]) == 36 and d["cmdline"] == "heartbeat interval_ms=10"') == True ]] &&
	ok "get shows uuid and cmdline" || not_ok "get" "$out"

# bad input: nothing is created
expect 5 "duplicate name -> 5" vmkctl -s esx1 vm create -n vm1 -m 64 --kernel "$ELF"
for bad in "a/b" ".." "a b" "$(printf 'x%.0s' $(seq 300))"; do
	expect 2 "name '${bad:0:12}' refused -> 2" vmkctl -s esx1 vm create -n "$bad" -m 64 --kernel "$ELF"
done
expect 2 "memory 0 -> 2" vmkctl -s esx1 vm create -n m0 -m 0 --kernel "$ELF"
expect 2 "memory beyond the host -> 2" vmkctl -s esx1 vm create -n big -m 65536 --kernel "$ELF"
expect_match "more than this host" "message says the host has less" "$err"
expect 4 "missing kernel -> 4" vmkctl -s esx1 vm create -n nok -m 64 --kernel /nonexistent/kernel
expect 4 "unknown datastore -> 4" vmkctl -s esx1 vm create -n nods -m 64 --kernel "$ELF" -d nope
expect 2 "relative kernel path -> 2" vmkctl -s esx1 vm create -n rel -m 64 --kernel vmlinux
[[ $(ls "$ds1") == "vm1" ]] && ok "refused creates leave nothing behind" || not_ok "leftovers" "$(ls "$ds1")"

# a corrupt .vmx: listed invalid after a restart; hostd serves the rest
expect 0 "vm create vm2" vmkctl -s esx1 vm create -n vm2 -m 32 --kernel "$ELF"
printf 'vm = { name = ' >"$ds1/vm2/vm2.vmx"
"$LAB" kill-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
"$LAB" start-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
expect 0 "vm list after a hostd restart" vmkctl -s esx1 --formatter json vm list
[[ $(json_get 'sorted((v["name"], v["state"]) for v in d)') == "[('vm1', 'poweredOff'), ('vm2', 'invalid')]" ]] &&
	ok "inventory persisted; corrupt vm2 listed invalid" || not_ok "inventory after restart" "$out"
expect 0 "vm get after the restart" vmkctl -s esx1 --formatter json vm get -n vm1
[[ $(json_get 'd["datastore"]') == datastore1 ]] && ok "the datastore is remembered" ||
	not_ok "datastore after restart" "$out"
expect 0 "vm get of the invalid VM" vmkctl -s esx1 --formatter json vm get -n vm2
expect_match "syntax error" "get names the parse error" "$(json_get 'd["error"]')"

# unregister keeps the files; register brings the VM back
expect 0 "vm unregister vm1" vmkctl -s esx1 vm unregister -n vm1
[[ -f $ds1/vm1/vm1.vmx ]] && ok "unregister keeps the files" || not_ok "files after unregister"
expect 4 "get after unregister -> 4" vmkctl -s esx1 vm get -n vm1
expect 0 "vm register from the datastore" vmkctl -s esx1 --formatter json vm register \
	--path datastore1:vm1/vm1.vmx
[[ $(json_get '(d["name"], d["state"], d["datastore"])') == "('vm1', 'poweredOff', 'datastore1')" ]] &&
	ok "register answers with the VM" || not_ok "register answer" "$out"
expect 5 "register twice -> 5" vmkctl -s esx1 vm register --path "$ds1/vm1/vm1.vmx"
mkdir -p "$ds1/bad" && printf 'vm = { name = "bad"; memory_mib = 0; };' >"$ds1/bad/bad.vmx"
expect 2 "register a broken .vmx -> 2" vmkctl -s esx1 vm register --path datastore1:bad/bad.vmx
expect_match "bad.vmx:1: .*(uuid|memory_mib)" "the error names the file and line" "$err"
rm -rf "$ds1/bad"
expect 4 "register a missing file -> 4" vmkctl -s esx1 vm register --path datastore1:none/none.vmx
expect 2 "register with '..' -> 2" vmkctl -s esx1 vm register --path datastore1:../x/x.vmx
expect 0 "vm get shows the VM's events" vmkctl -s esx1 --formatter json vm get -n vm1
[[ $(json_get '" ".join(w for e in d["events"] for w in e.split(" ")[2:4])') == \
	"root: created root: unregistered root: registered" ]] &&
	ok "events: created, unregistered, registered, each by root" || not_ok "events" "$out"
grep -q ' vm1 root: registered from ' "$LAB_DIR/esx1/state/events.log" &&
	ok "events.log in the state dir" || not_ok "events.log" "$(cat "$LAB_DIR/esx1/state/events.log")"
expect 0 "vm destroy vm1" vmkctl -s esx1 vm destroy -n vm1
[[ ! -e $ds1/vm1 ]] && ok "destroy removes the VM's directory" || not_ok "vm1 dir left"
expect 4 "get after destroy -> 4" vmkctl -s esx1 vm get -n vm1
expect 0 "destroy the invalid VM" vmkctl -s esx1 vm destroy -n vm2
expect 4 "destroy unknown -> 4" vmkctl -s esx1 vm destroy -n vm2

t_done
