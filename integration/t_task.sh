#!/usr/bin/env bash
# Tasks through vmkctl against a real hostd: task list|get|cancel, their
# help, JSON shapes and error paths (unknown ids -> 4, usage -> 2), and a
# clean hostd shutdown with the task table in place. Nothing in hostd starts
# tasks yet (long operations will): waiting, progress and cancellation of
# running tasks are covered by tests/test_task.c and tests/test_taskwait.c.
set -u
. "$(dirname "$0")/lib.sh"

if ! "$LAB" up --hosts 1 --dir "$LAB_DIR" >"$T_HOME/lab.log" 2>&1; then
	not_ok "lab up" "$(tail -n 30 "$T_HOME/lab.log")"
	t_done
	exit 1
fi
ok "lab up with 1 host"

# --- help and completion ---
expect 0 "task --help" vmkctl task --help
expect_match '^  list ' "task --help lists list" "$out"
expect_match '^  get ' "task --help lists get" "$out"
expect_match '^  cancel ' "task --help lists cancel" "$out"
expect 0 "task get --help" vmkctl task get --help
expect_match '-t, --task-id ID' "task get takes -t ID" "$out"
expect_match '--wait ' "task get has --wait" "$out"
expect 0 "vmkctl --help" vmkctl --help
expect_match '^  task ' "the top help lists the task namespace" "$out"
run "$VMK_BIN/vmkctl" --generate-completion bash
expect_match '\["task get"\]="--help --task-id -t' "completion knows task get" "$out"

# --- an empty table ---
expect 0 "task list (json)" vmkctl -s esx1 --formatter json task list
[[ $out == "[]" ]] && ok "no tasks: an empty JSON array" || not_ok "empty task list" "$out"
expect 0 "task list (table)" vmkctl -s esx1 task list
expect 0 "task list (csv)" vmkctl -s esx1 --formatter csv task list
expect_match '^task_id,op,target,state,progress,user,started,duration_ms$' \
	"csv header names the columns" "$out"

# --- unknown ids: 4, with a message and a JSON error document ---
expect 4 "task get unknown -> 4" vmkctl -s esx1 task get -t task-nope-1
expect_match 'no task task-nope-1 on this host.*task list' "get names the id and task list" "$err"
expect 4 "task get unknown (json) -> 4" vmkctl -s esx1 --formatter json task get -t task-nope-1
[[ $(json_get '(d["error"]["code"], d["error"]["name"] != "", "task-nope-1" in d["error"]["message"])') == \
	"(4, True, True)" ]] && ok "JSON error document with code 4" || not_ok "JSON error shape" "$out"
expect 4 "task cancel unknown -> 4" vmkctl -s esx1 task cancel -t task-nope-1
expect_match 'no task task-nope-1' "cancel names the id" "$err"
expect 4 "task get --wait unknown -> 4" vmkctl -s esx1 task get -t task-nope-2 --wait
expect_match 'waiting for task task-nope-2: no task task-nope-2' "wait says what it waited for" "$err"
expect 4 "an id of another hostd run -> 4" vmkctl -s esx1 task get -t task-0000000z-3
expect_match 'earlier run of hostd.*do not survive a restart' "the message explains restarts" "$err"

# --- usage errors: 2 ---
expect 2 "task get without -t -> 2" vmkctl -s esx1 task get
expect_match 'missing --task-id' "missing -t is named" "$err"
expect 2 "task cancel without -t -> 2" vmkctl -s esx1 task cancel
expect 2 "task get -t '' -> 2" vmkctl -s esx1 task get -t ""
expect 2 "overlong id -> 2" vmkctl -s esx1 task get -t "task-$(printf 'x%.0s' $(seq 80))"
expect_match 'too long for a task id' "overlong id message" "$err"
expect 2 "--wait-timeout without --wait -> 2" vmkctl -s esx1 task get -t task-nope-1 --wait-timeout 5
expect 2 "--wait-timeout 0 -> 2" vmkctl -s esx1 task get -t task-nope-1 --wait --wait-timeout 0
expect 2 "task bogus -> 2" vmkctl -s esx1 task bogus

# --- hostd stops cleanly with its task table, and comes back ---
pid=$(cat "$LAB_DIR/esx1/hostd.pid")
kill -TERM "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
	not_ok "hostd exits on SIGTERM" "pid $pid still runs after 10 s"
else
	ok "hostd exits on SIGTERM"
fi
grep -q 'shutting down' "$LAB_DIR/esx1/hostd.out" && ok "hostd logged its shutdown" ||
	not_ok "shutdown log" "$(tail -n 5 "$LAB_DIR/esx1/hostd.out")"
"$LAB" start-host esx1 --dir "$LAB_DIR" >/dev/null 2>&1
expect 0 "task list after a restart" vmkctl -s esx1 --formatter json task list
[[ $out == "[]" ]] && ok "still no tasks after a restart" || not_ok "task list after restart" "$out"
grep -Eq 'Sanitizer|runtime error|double free|corrupted' "$LAB_DIR/esx1/hostd.out" &&
	not_ok "hostd.out is clean" "$(grep -E 'Sanitizer|runtime error' "$LAB_DIR/esx1/hostd.out")" ||
	ok "hostd.out is clean"

t_done
