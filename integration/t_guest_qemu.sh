#!/usr/bin/env bash
# The micro-guest kit under QEMU microvm with TCG (no KVM needed): the same
# PVH ELF that vmx boots runs every workload and powers off with its status
# (QEMU's isa-debug-exit turns guest status s into exit code (s << 1) | 1).
# Standalone TAP (no lab): every test skips when QEMU is not installed.
#
#   VMK_GUEST_ELF  the guest (default $VMK_BIN/../guest/vmk-guest.elf)
#   VMK_BIN        default <repo>/build/bin
#   VMK_TSC_KHZ    the host TSC rate (default: dmesg, else measured)
set -u
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
top=$(cd "$here/.." && pwd)
VMK_BIN=${VMK_BIN:-$top/build/bin}
ELF=${VMK_GUEST_ELF:-$VMK_BIN/../guest/vmk-guest.elf}

n=0 failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() {
	n=$((n + 1)); failed=$((failed + 1))
	echo "not ok $n - $1"
	shift
	[[ $# -gt 0 ]] && printf '%s\n' "$@" | sed 's/^/#   /'
	return 0
}
skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

names=(
	"hello prints its line and powers off with status 0"
	"heartbeat count=20 prints hb 0..19 consecutively"
	"burn seconds=1 reports iterations and takes a second"
	"dirty mib=8 seconds=1 reports its rate"
	"verify mib=8 passes=2 prints 2 OK lines"
	"an unknown workload powers off with status 2"
	"disk writes, flushes and verifies 256 blocks through virtio-blk"
	"disk verify-only in a new boot finds the blocks intact"
	"disk verify-only reports a flipped byte as CORRUPT (status 1)"
	"disk without a virtio-blk device powers off with status 2"
	"disk refuses a legacy (version 1) virtio-mmio device"
	"disk finds its device among virtio_mmio.device=SIZE@ADDR:IRQ given by hand"
	"net: 200 frames between two guests, 200 received, 0 gaps, 0 reordered"
	"net: an echo returns every frame to the sender"
	"net without a virtio-net device powers off with status 2"
)
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
	for t in "${names[@]}"; do skip "$t" "qemu-system-x86_64 not installed"; done
	echo "1..$n"
	exit 0
fi

tmp=$(mktemp -d /tmp/vmk-test-qemu.XXXXXX)
cleanup() {
	local j
	for j in $(jobs -p); do kill "$j" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ ! -r $ELF ]]; then
	for t in "${names[@]}"; do not_ok "$t" "no guest at $ELF (make build/guest/vmk-guest.elf)"; done
	echo "1..$n"
	exit 1
fi

# TCG's rdtsc follows the host TSC: tell the guest its rate. The kernel's
# calibration if dmesg is readable, else rdtsc against CLOCK_MONOTONIC_RAW.
host_tsc_khz() {
	local mhz
	mhz=$(dmesg 2>/dev/null | grep -o 'tsc: Refined TSC clocksource calibration: [0-9.]* MHz' |
		tail -n 1 | grep -o '[0-9.]* MHz')
	[[ -z $mhz ]] &&
		mhz=$(dmesg 2>/dev/null | grep -o 'tsc: Detected [0-9.]* MHz' | tail -n 1 | grep -o '[0-9.]* MHz')
	if [[ -n $mhz ]]; then
		awk '{ printf "%d\n", $1 * 1000 }' <<<"$mhz"
		return
	fi
	cat >"$tmp/tsc.c" <<-'EOF'
		#include <stdio.h>
		#include <time.h>
		#include <x86intrin.h>
		int main(void)
		{
			struct timespec a, b, d = { 0, 200000000 };
			clock_gettime(CLOCK_MONOTONIC_RAW, &a);
			unsigned long long t0 = __rdtsc();
			nanosleep(&d, NULL);
			clock_gettime(CLOCK_MONOTONIC_RAW, &b);
			unsigned long long t1 = __rdtsc();
			double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
			printf("%.0f\n", (t1 - t0) / ns * 1e6);
			return 0;
		}
	EOF
	if cc -O2 -o "$tmp/tsc" "$tmp/tsc.c" 2>/dev/null; then
		"$tmp/tsc"
		return
	fi
	awk -F: '/^cpu MHz/ { printf "%d\n", $2 * 1000; exit }' /proc/cpuinfo
}
tsc_khz=${VMK_TSC_KHZ:-$(host_tsc_khz)}
[[ $tsc_khz =~ ^[0-9]+$ && $tsc_khz -gt 0 ]] || tsc_khz=2000000
echo "# host TSC $tsc_khz kHz"

# qemu [-acpi] CMDLINE [QEMU ARGS...]: boots the guest; its console in $out,
# QEMU's own stderr in $err, the guest's status in $status ("timeout" or
# "qemu-error" when it did not power off), the run time in $ms. acpi=off
# makes microvm put its virtio-mmio devices on the command line
# (virtio_mmio.device=512@ADDR:IRQ) as vmx does; -acpi keeps ACPI (and then
# the caller names the devices itself).
qemu() {
	local machine=microvm,accel=tcg,acpi=off
	if [[ $1 == -acpi ]]; then
		machine=microvm,accel=tcg
		shift
	fi
	local cl=$1 ef=$tmp/qemu.err.$BASHPID
	shift
	local t0=$EPOCHREALTIME
	out=$(timeout -k 5 60 qemu-system-x86_64 -M "$machine" -m 128 -nodefaults -no-user-config \
		-nographic -display none -serial stdio -device isa-debug-exit,iobase=0xf4,iosize=4 \
		-global virtio-mmio.force-legacy=false "$@" -kernel "$ELF" \
		-append "$cl tsc_khz=$tsc_khz" </dev/null 2>"$ef")
	local rc=$?
	local t1=$EPOCHREALTIME
	ms=$(((${t1/./} - ${t0/./}) / 1000))
	err=$(cat "$ef")
	rm -f "$ef"
	if [[ $rc -eq 124 || $rc -eq 137 ]]; then
		status=timeout
	elif ((rc % 2 == 0)) || grep -q 'qemu-system-x86_64:' <<<"$err"; then
		status=qemu-error # isa-debug-exit codes are odd; QEMU's own errors say so
	else
		status=$(((rc - 1) >> 1))
	fi
}

# verdict NAME: ok if the condition just tested held, else not ok with the run.
verdict() {
	local r=$?
	if [[ $r -eq 0 ]]; then ok "$1"; else not_ok "$1" "status $status, ${ms} ms" "$out" "$err"; fi
}
has() { grep -Eq -- "$1" <<<"$out"; }
count() { grep -Ec -- "$1" <<<"$out"; }

# --- the basic workloads ---
qemu "hello"
[[ $status == 0 ]] && has "^hello from vmk guest: ram [0-9]+ MiB, tsc $tsc_khz kHz"
verdict "${names[0]}"

qemu "heartbeat count=20 interval_ms=5"
hb=$(awk '/^hb / { if ($2 != k) bad = 1; k++ } END { print (k == 20 && !bad) ? "yes" : "no" }' <<<"$out")
[[ $status == 0 && $hb == yes ]]
verdict "${names[1]}"

qemu "burn seconds=1"
[[ $status == 0 && $ms -ge 900 ]] && has "^burn [1-9][0-9]*$"
verdict "${names[2]}"

qemu "dirty mib=8 seconds=1"
[[ $status == 0 ]] && has "^dirty 8 MiB at 0 MiB/s" && has "^dirty [0-9]+$"
verdict "${names[3]}"

qemu "verify mib=8 passes=2"
[[ $status == 0 && $(count "^verify pass [12] OK") -eq 2 ]] && ! has CORRUPT
verdict "${names[4]}"

qemu "no-such-workload"
[[ $status == 2 ]] && has "unknown workload 'no-such-workload'"
verdict "${names[5]}"

# --- disk: a raw image on virtio-blk ---
img=$tmp/disk.img
truncate -s 16M "$img"
# shellcheck disable=SC2054 # commas inside QEMU options
blk=(-drive "if=none,id=d0,file=$img,format=raw" -device virtio-blk-device,drive=d0)
qemu "disk passes=2 seed=7" "${blk[@]}"
[[ $status == 0 && $(count "^disk pass [12] OK$") -eq 2 ]]
verdict "${names[6]}"

qemu "disk verify-only=1 pass=2 seed=7" "${blk[@]}"
[[ $status == 0 ]] && has "^disk pass 2 OK$"
verdict "${names[7]}"

# one byte of block 77 flipped on the host
byte=$(od -An -tu1 -j $((77 * 4096 + 123)) -N1 "$img" | tr -d ' ')
printf '%b' "\\$(printf '%03o' $((byte ^ 0xff)))" |
	dd of="$img" bs=1 seek=$((77 * 4096 + 123)) conv=notrunc status=none
qemu "disk verify-only=1 pass=2 seed=7" "${blk[@]}"
[[ $status == 1 ]] && has "^disk CORRUPT block 77 pass 2" && ! has "disk pass"
verdict "${names[8]}"

qemu "disk"
[[ $status == 2 ]] && has "^disk: no virtio-blk device"
verdict "${names[9]}"

qemu "disk" -global virtio-mmio.force-legacy=true "${blk[@]}"
[[ $status == 2 ]] && has "legacy virtio-mmio device \(version 1\)" &&
	has "^disk: no virtio-blk device"
verdict "${names[10]}"

# With ACPI on, QEMU leaves the command line alone (and has 24 transports
# from 0xfeb00000, 0x200 apart): name every slot by hand, sizes in each
# syntax; the empty ones (device id 0) are skipped.
slots=""
sizes=(4K 0x1000 512)
for i in $(seq 0 23); do
	slots+=" virtio_mmio.device=${sizes[i % 3]}@$(printf '0x%x' $((0xfeb00000 + i * 0x200))):$((5 + i))"
done
qemu -acpi "disk blocks=64$slots" "${blk[@]}"
[[ $status == 0 ]] && has "^disk pass 1 OK$"
verdict "${names[11]}"

# --- net: two guests on one UDP tunnel on loopback (QEMU -netdev socket) ---
free_udp_ports() {
	python3 -c 'import socket
s = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])' 2>/dev/null || echo $((40000 + RANDOM % 10000)) $((50000 + RANDOM % 10000))
}
nic() { # LOCAL-PORT REMOTE-PORT MAC: QEMU args for a NIC on the tunnel
	echo -netdev "socket,id=n0,udp=127.0.0.1:$2,localaddr=127.0.0.1:$1" \
		-device "virtio-net-device,netdev=n0,mac=$3"
}
# pair NAME-A CMDLINE-A NAME-B CMDLINE-B: runs both at once; A's results in
# $a_status/$a_out, B's in $b_status/$b_out
pair() {
	local p1 p2
	read -r p1 p2 < <(free_udp_ports)
	# shellcheck disable=SC2046
	(qemu "$2" $(nic "$p1" "$p2" 52:54:00:00:00:0a)
		printf '%s\n' "$status" >"$tmp/$1.status"; printf '%s\n' "$out" "$err" >"$tmp/$1.out") &
	local bg=$!
	# shellcheck disable=SC2046
	qemu "$4" $(nic "$p2" "$p1" 52:54:00:00:00:0b)
	b_status=$status b_out="$out$err"
	wait "$bg"
	a_status=$(cat "$tmp/$1.status")
	a_out=$(cat "$tmp/$1.out")
}

pair rx "net role=recv count=200 timeout_ms=30000" tx "net role=send count=200 interval_us=500 wait_ms=30000"
if [[ $a_status == 0 && $b_status == 0 ]] &&
	grep -q '^net rx 200 gaps 0 reorder 0 final$' <<<"$a_out" && grep -q '^net tx 200 final$' <<<"$b_out"; then
	ok "${names[12]}"
else
	not_ok "${names[12]}" "recv: status $a_status" "$a_out" "send: status $b_status" "$b_out"
fi

pair echo "net role=echo count=50 timeout_ms=30000" tx "net role=send count=50 interval_us=1000 size=1000 wait_ms=30000"
if [[ $a_status == 0 && $b_status == 0 ]] && grep -q '^net echo 50 final$' <<<"$a_out" &&
	grep -Eq '^net tx 50 echoed 50 rtt_us avg [0-9]+ max [0-9]+ final$' <<<"$b_out"; then
	ok "${names[13]}"
else
	not_ok "${names[13]}" "echo: status $a_status" "$a_out" "send: status $b_status" "$b_out"
fi

qemu "net role=recv"
[[ $status == 2 ]] && has "^net: no virtio-net device"
verdict "${names[14]}"

echo "1..$n"
[[ $failed -eq 0 ]]
