#!/usr/bin/env bash
# Foundation scenario: a two-host lab, vmkctl over TLS against both, auth,
# thumbprint pinning, sessions, formatters, datastores, and host failures.
set -u
. "$(dirname "$0")/lib.sh"

if ! "$LAB" up --hosts 2 --dir "$LAB_DIR" >"$T_HOME/lab.log" 2>&1; then
	not_ok "lab up with 2 hosts" "$(tail -n 30 "$T_HOME/lab.log")"
	t_done
	exit 1
fi
ok "lab up with 2 hosts"

# --- both hosts answer over TLS, resolved through the lab ---
for h in esx1 esx2; do
	expect 0 "$h: system version get (json)" vmkctl -s "$h" --formatter json system version get
	[[ $(json_get 'd["hostname"]') == "$h" ]] && ok "$h: reports its own name" ||
		not_ok "$h: reports its own name" "$out"
done
expect 0 "hardware cpu get" vmkctl -s esx1 --formatter json hardware cpu get
[[ $(json_get '"kvm_available" in d and len(d["features"]) > 0') == True ]] &&
	ok "cpu get lists features and KVM availability" || not_ok "cpu get fields" "$out"
expect 0 "hardware memory get" vmkctl -s esx2 --formatter json hardware memory get
[[ $(json_get 'd["total_bytes"] > d["available_bytes"] > 0') == True ]] &&
	ok "memory get: total > available > 0" || not_ok "memory get values" "$out"

# --- formatters on a list ---
expect 0 "datastore list (json)" vmkctl -s esx1 --formatter json storage datastore list
[[ $(json_get '",".join(sorted(x["name"] for x in d))') == "datastore1,shared" ]] &&
	ok "esx1 has datastore1 and shared" || not_ok "esx1 datastores" "$out"
[[ $(json_get '[x["shared"] for x in d if x["name"]=="shared"][0]') == True ]] &&
	ok "shared datastore is marked shared" || not_ok "shared flag" "$out"
expect 0 "datastore list (table)" vmkctl -s esx1 storage datastore list
expect_match '^Name +Path +Shared' "table has a header" "$out"
expect 0 "datastore list (csv)" vmkctl -s esx1 --formatter csv storage datastore list
expect_match '^name,path,shared,capacity_bytes' "csv has a header" "$out"
expect 0 "datastore list (xml)" vmkctl -s esx1 --formatter xml storage datastore list
python3 -c 'import sys,xml.dom.minidom as m; m.parseString(sys.stdin.read())' <<<"$out" &&
	ok "xml parses" || not_ok "xml parses" "$out"
expect 0 "datastore list (keyvalue)" vmkctl -s esx1 --formatter keyvalue storage datastore list
expect_match '^Datastore\.name\.string=datastore1$' "keyvalue lines" "$out"

# --- datastores: add, persist across a hostd restart, remove, errors ---
mkdir -p "$LAB_DIR/extra-ds"
expect 0 "datastore add" vmkctl -s esx2 storage datastore add -n extra --path "$LAB_DIR/extra-ds"
expect 5 "datastore add: duplicate name -> 5" \
	vmkctl -s esx2 storage datastore add -n extra --path "$LAB_DIR/shared"
expect 5 "datastore add: path already a datastore -> 5" \
	vmkctl -s esx2 storage datastore add -n other --path "$LAB_DIR/extra-ds"
expect 2 "datastore add: bad name -> 2" \
	vmkctl -s esx2 storage datastore add -n ../x --path "$LAB_DIR/extra-ds"
expect_match "may not start with '.'" "bad name message says why" "$err"
expect 4 "datastore add: missing directory -> 4" \
	vmkctl -s esx2 storage datastore add -n gone --path "$LAB_DIR/nope"
expect 2 "datastore add: missing --path -> 2 (usage)" vmkctl -s esx2 storage datastore add -n x
"$LAB" kill-host esx2 --dir "$LAB_DIR" >/dev/null 2>&1
"$LAB" start-host esx2 --dir "$LAB_DIR" >/dev/null 2>&1
expect 0 "datastore list after hostd restart" vmkctl -s esx2 --formatter json storage datastore list
[[ $(json_get '[x["source"] for x in d if x["name"]=="extra"]') == "['runtime']" ]] &&
	ok "runtime datastore survives a hostd restart" || not_ok "datastore persisted" "$out"
expect 5 "datastore remove of a config datastore -> 5" \
	vmkctl -s esx2 storage datastore remove -n datastore1
expect_match "host.cfg line" "message names the config line" "$err"
expect 0 "datastore remove" vmkctl -s esx2 storage datastore remove -n extra
expect 4 "datastore remove unknown -> 4" vmkctl -s esx2 storage datastore remove -n extra

# --- authentication ---
expect 3 "wrong password -> 3" vmkctl -s esx1 -p wrong-password system version get
expect_match "wrong username or password" "wrong password message" "$err"
expect 3 "unknown user -> 3" vmkctl -s esx1 -u nobody system version get
expect 3 "wrong password (json) -> 3" vmkctl -s esx1 -p bad --formatter json system version get
[[ $(json_get 'd["error"]["code"]') == 3 ]] && ok "json error object on stdout" ||
	not_ok "json error object" "$out"

# --- thumbprint pinning ---
read -r _ addr1 tp1 < <(grep '^esx1 ' "$LAB_DIR/hosts")
read -r _ _ tp2 < <(grep '^esx2 ' "$LAB_DIR/hosts")
pw=$(sed -n 's/^password=//p' "$LAB_DIR/credentials")
expect 3 "wrong thumbprint -> 3" vmkctl -s esx1 --thumbprint "$tp2" system version get
expect_match "does not match|has thumbprint" "wrong thumbprint message" "$err"
expect 2 "malformed thumbprint -> 2" vmkctl -s esx1 --thumbprint abc system version get
# a host the client has never seen: vmkctl prints its thumbprint
run ip netns exec vmk-admin "$VMK_BIN/vmkctl" -s "$addr1" -p "$pw" system version get
[[ $rc -eq 3 ]] && ok "first contact without thumbprint -> 3" || not_ok "first contact" "rc=$rc $err"
expect_match "$tp1" "first contact prints the host's thumbprint" "$err"
run ip netns exec vmk-admin "$VMK_BIN/vmkctl" -s "$addr1" -p "$pw" --thumbprint "$tp1" \
	system version get
[[ $rc -eq 0 ]] && ok "explicit --thumbprint works" || not_ok "explicit thumbprint" "$err"
run ip netns exec vmk-admin "$VMK_BIN/vmkctl" -s "$addr1" -p "$pw" system version get
[[ $rc -eq 0 ]] && ok "accepted thumbprint remembered in known_hosts" ||
	not_ok "known_hosts" "$err"

# --- session file ---
sf=$T_HOME/session
expect 0 "login saves a session file" vmkctl -s esx1 --sessionfile "$sf" system version get
[[ $(stat -c %a "$sf") == 600 ]] && ok "session file is mode 0600" || not_ok "session mode"
run ip netns exec vmk-admin "$VMK_BIN/vmkctl" -s "$addr1" --thumbprint "$tp1" \
	--sessionfile "$sf" system version get
[[ $rc -eq 0 ]] && ok "session file reused without a password" || not_ok "session reuse" "$err"

# --- usage errors and help ---
expect 2 "unknown namespace -> 2" vmkctl bogus list
expect 2 "unknown command -> 2" vmkctl storage datastore frobnicate
expect 0 "--help at the top" vmkctl --help
expect 0 "namespace alone lists its commands" vmkctl storage datastore
expect_match "Available Commands" "namespace listing" "$out"
expect 0 "command --help" vmkctl storage datastore add --help

# --- malformed traffic never takes hostd down ---
for i in 1 2 3; do
	head -c 6000 /dev/urandom |
		timeout 5 ip netns exec vmk-admin openssl s_client -quiet -connect "$addr1" \
			>/dev/null 2>&1
	head -c 300 /dev/urandom |
		timeout 5 ip netns exec vmk-admin bash -c "cat > /dev/tcp/${addr1%:*}/${addr1#*:}" \
			2>/dev/null
	# a peer that connects and hangs up before any byte
	timeout 5 ip netns exec vmk-admin bash -c "exec 3<>/dev/tcp/${addr1%:*}/${addr1#*:}; exec 3>&-" \
		2>/dev/null
done
expect 0 "hostd serves after garbage over TLS and plain TCP" vmkctl -s esx1 system version get

# --- host failures: killed -> exit 6; stopped (hung) -> exit 6 after --timeout ---
"$LAB" kill-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
expect 6 "hostd killed -> 6" vmkctl -s esx1 --timeout 3 system version get
expect_match "esx1|198\.18" "unreachable message names the host" "$err"
"$LAB" start-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
expect 0 "hostd restarted serves again" vmkctl -s esx1 system version get
pid=$(cat "$LAB_DIR/esx1/hostd.pid")
kill -STOP "$pid"
expect 6 "hung hostd -> 6 within --timeout" vmkctl -s esx1 --timeout 2 system version get
expect_match "no (TLS )?answer|timed out|handshake" "timeout message" "$err"
kill -CONT "$pid"
expect 0 "other host unaffected" vmkctl -s esx2 system version get
"$LAB" link esx2 mgmt down --dir "$LAB_DIR" >/dev/null 2>&1
expect 6 "host cut off its management network -> 6" vmkctl -s esx2 --timeout 2 system version get
"$LAB" link esx2 mgmt up --dir "$LAB_DIR" >/dev/null 2>&1
expect 0 "link restored: host answers again" vmkctl -s esx2 system version get

# --- teardown leaves nothing behind ---
"$LAB" down --dir "$LAB_DIR" >/dev/null 2>&1
left=$(ip netns list | grep -c '^vmk-')
[[ $left -eq 0 ]] && ok "lab down removes every namespace" || not_ok "namespaces left: $left"
[[ ! -e $LAB_DIR ]] && ok "lab down removes the lab directory" || not_ok "lab dir left"

t_done
