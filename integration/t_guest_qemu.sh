#!/usr/bin/env bash
# The micro-guest kit under QEMU microvm (TCG: no KVM needed): the same PVH
# ELF that vmx boots runs every workload and powers off with its status
# (QEMU's isa-debug-exit turns status s into exit code (s << 1) | 1).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
VMK_BIN=${VMK_BIN:-$top/build/bin}
ELF=${VMK_GUEST_ELF:-$VMK_BIN/../guest/vmk-guest.elf}
tmp=$(mktemp -d /tmp/vmk-test-qemu.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; shift; printf '#   %s\n' "$@"; }
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

names=("hello prints and powers off with status 0" "heartbeat lines are consecutive"
	"burn reports iterations" "dirty reaches its rate" "verify passes find no corruption"
	"an unknown workload powers off with status 2"
	"disk writes, flushes and verifies blocks through virtio-blk"
	"disk verify-only in a new boot finds the blocks intact"
	"disk verify-only reports a flipped byte as CORRUPT"
	"disk without a virtio-blk device powers off with status 2"
	"net: 200 numbered frames between two guests, no gap, no reordering"
	"net without a virtio-net device powers off with status 2")
if ! command -v qemu-system-x86_64 >/dev/null; then
	for t in "${names[@]}"; do skip "$t" "qemu-system-x86_64 not installed (scripts/deps installs it)"; done
	echo "1..$n"
	exit 0
fi
# TCG's rdtsc follows the host TSC: tell the guest its rate
mhz=$(awk -F: '/^cpu MHz/ { printf "%d", $2; exit }' /proc/cpuinfo)
tsc="tsc_khz=$((${mhz:-2000} * 1000))"

# qemu CMDLINE [QEMU ARGS...]: runs the guest, output in $out, guest status in
# $status. acpi=off makes microvm list its virtio-mmio devices on the command
# line (virtio_mmio.device=...), as vmx does.
qemu() {
	local cl=$1
	shift
	out=$(timeout 60 qemu-system-x86_64 -M microvm,accel=tcg,acpi=off -m 128 -nodefaults \
		-no-user-config -nographic -display none -serial stdio \
		-device isa-debug-exit,iobase=0xf4,iosize=4 -global virtio-mmio.force-legacy=false \
		"$@" -kernel "$ELF" -append "$cl $tsc" 2>&1)
	local rc=$?
	status=$(((rc - 1) >> 1))
	[[ $rc -eq 124 ]] && status=timeout
}

qemu "hello"
[[ $status == 0 ]] && grep -q "^hello from vmk guest" <<<"$out" && ok "${names[0]}" ||
	not_ok "${names[0]}" "status $status" "$out"

qemu "heartbeat interval_ms=5 count=40"
seq_ok=$(awk '/^hb /{ if ($2 != k) bad=1; k++ } END { print (k == 40 && !bad) }' <<<"$out")
[[ $status == 0 && $seq_ok == 1 ]] && ok "${names[1]}" || not_ok "${names[1]}" "status $status" "$out"

qemu "burn interval_ms=200 seconds=1"
[[ $status == 0 ]] && [[ $(grep -c '^burn [1-9]' <<<"$out") -ge 3 ]] && ok "${names[2]}" ||
	not_ok "${names[2]}" "status $status" "$out"

qemu "dirty mib=8 rate=20 seconds=3"
# each per-second report is within 20% of the requested 20 MiB/s
rate_ok=$(awk '/^dirty [0-9]+$/ { k++; if ($2 < 16 || $2 > 24) bad=1 } END { print (k >= 2 && !bad) }' <<<"$out")
[[ $status == 0 && $rate_ok == 1 ]] && ok "${names[3]}" || not_ok "${names[3]}" "status $status" "$out"

qemu "verify mib=8 passes=3"
[[ $status == 0 ]] && [[ $(grep -c '^verify pass [0-9]* OK' <<<"$out") -eq 3 ]] &&
	! grep -q CORRUPT <<<"$out" && ok "${names[4]}" || not_ok "${names[4]}" "status $status" "$out"

qemu "no-such-workload"
[[ $status == 2 ]] && grep -q "unknown workload 'no-such-workload'" <<<"$out" && ok "${names[5]}" ||
	not_ok "${names[5]}" "status $status" "$out"

img=$tmp/disk.img
truncate -s 16M "$img"
blk=(-drive "if=none,id=d0,file=$img,format=raw" -device virtio-blk-device,drive=d0)
qemu "disk blocks=128 passes=2" "${blk[@]}"
[[ $status == 0 ]] && [[ $(grep -c '^disk pass [12] OK' <<<"$out") -eq 2 ]] && ok "${names[6]}" ||
	not_ok "${names[6]}" "status $status" "$out"
qemu "disk blocks=128 verify-only=1 pass=2" "${blk[@]}"
[[ $status == 0 ]] && grep -q '^disk pass 2 OK' <<<"$out" && ok "${names[7]}" ||
	not_ok "${names[7]}" "status $status" "$out"
# flip one byte of block 77 on the host
printf '\xff' | dd of="$img" bs=1 seek=$((77 * 4096 + 123)) conv=notrunc status=none
qemu "disk blocks=128 verify-only=1 pass=2" "${blk[@]}"
[[ $status == 1 ]] && grep -q '^disk CORRUPT block 77 pass 2' <<<"$out" && ok "${names[8]}" ||
	not_ok "${names[8]}" "status $status" "$out"
qemu "disk"
[[ $status == 2 ]] && grep -q 'no virtio-blk device' <<<"$out" && ok "${names[9]}" ||
	not_ok "${names[9]}" "status $status" "$out"

# two guests on one UDP tunnel on loopback (QEMU's -netdev socket)
p1=$((40000 + RANDOM % 10000))
p2=$((p1 + 1))
net() { # LOCAL REMOTE: QEMU args for a NIC on the tunnel
	echo -netdev "socket,id=n0,udp=127.0.0.1:$2,localaddr=127.0.0.1:$1" -device virtio-net-device,netdev=n0
}
# shellcheck disable=SC2046
(qemu "net role=recv count=200 timeout_ms=20000" $(net $p1 $p2); echo "$status" >"$tmp/rx.status"
	echo "$out" >"$tmp/rx.out") &
rx=$!
sleep 0.5
# shellcheck disable=SC2046
qemu "net role=send count=200 interval_us=500 delay_ms=500" $(net $p2 $p1)
tx_status=$status tx_out=$out
wait $rx
rx_status=$(cat "$tmp/rx.status")
rx_out=$(cat "$tmp/rx.out")
[[ $tx_status == 0 && $rx_status == 0 ]] && grep -q '^net rx 200 gaps 0 reorder 0' <<<"$rx_out" &&
	ok "${names[10]}" || not_ok "${names[10]}" "send: $tx_status $tx_out" "recv: $rx_status $rx_out"
qemu "net role=recv"
[[ $status == 2 ]] && grep -q 'no virtio-net device' <<<"$out" && ok "${names[11]}" ||
	not_ok "${names[11]}" "status $status" "$out"

echo "1..$n"
[[ $failed -eq 0 ]]
