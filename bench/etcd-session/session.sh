# The etcdctl session bench/etcd-compare-session.sh runs against etcd and against raftkv.
# Sourced by it (bash): `step NAME ARGS...` runs `etcdctl ARGS` and records its output as NAME;
# step_in feeds standard input; bg_start/bg_until run a watch, lock or campaign in the
# background; revision_now and the alias_* helpers keep revisions and ids out of the text that
# is compared. Both systems start empty, so the same writes give the same revisions: the
# revisions stay in the compared text on purpose.
# shellcheck shell=bash disable=SC2154

# ---- put, get, del: prefixes, ranges, limits, sorting, output formats --------------------------
step put-a1 put a/1 one
step put-a2 put a/2 two
step put-a3 put a/3 three
step put-b1 put b/1 bee
step put-c1 put c/1 sea
step get-one get a/1
step get-missing get nothing-here
step get-prefix get a/ --prefix
step get-prefix-keys-only get a/ --prefix --keys-only
step get-prefix-limit get a/ --prefix --limit=2
step get-prefix-sort-key-descend get a/ --prefix --sort-by=KEY --order=DESCEND
step get-all-sort-modify get "" --from-key --sort-by=MODIFY --order=DESCEND --keys-only
step get-all-sort-value get "" --from-key --sort-by=VALUE --order=ASCEND
step get-all-sort-create-limit get "" --from-key --sort-by=CREATE --order=DESCEND --limit=2
step get-range get a/1 a/3
step get-from-key get a/2 --from-key --keys-only
step get-print-value-only get a/2 --print-value-only
step get-json get a/1 -w json
step get-prefix-limit-json get a/ --prefix --limit=1 -w json
step get-fields get a/1 -w fields
step get-serializable get a/1 --consistency=s
R_BEFORE=$(revision_now)
step put-prev-kv put a/1 uno --prev-kv
step put-prev-kv-json put a/2 dos --prev-kv -w json
step get-at-old-revision get a/ --prefix --rev="$R_BEFORE"
step get-at-new-revision get a/ --prefix --rev="$((R_BEFORE + 1))"
step del-one del a/3
step del-missing del nothing-here
step del-prefix-prev-kv del a/ --prefix --prev-kv
step del-range del b/1 c/2
step get-all-after-deletes get "" --from-key
step get-deleted-at-old-revision get a/ --prefix --rev="$R_BEFORE" -w json

# ---- txn -i: comparisons, then the success ops, then the failure ops ---------------------------
step put-t1 put t/1 one
step_in txn-success $'value("t/1") = "one"\nversion("t/1") = "1"\n\nput t/1 "two"\nput t/2 other\nget t/1\n\nput t/failed x\n\n' txn -i
step_in txn-failure $'mod("t/1") < "3"\ncreate("t/nothing") > "0"\n\ndel t/1\n\nget t/ --prefix\nput t/failed y\n\n' txn -i
step_in txn-range-compare $'version("t/") > "0"\n\nget t/2\n\n\n' txn -i
step_in txn-json $'value("t/1") = "two"\n\nget t/1\ndel t/failed\n\nget t/2\n\n' txn -i -w json
# A read after a write in one transaction: which revision its header carries.
step_in txn-json-put-then-get $'\nput t/4 four\nget t/4\n\n\n' txn -i -w json
step_in txn-no-compare $'\nput t/3 three\n\n\n' txn -i

# ---- leases ------------------------------------------------------------------------------------
step lease-grant lease grant 600
LEASE=$(lease_of_last)
alias_lease "$LEASE" "<LEASE_1>"
step put-with-lease put leased/1 one --lease="$LEASE"
step put-with-lease-2 put leased/2 two --lease="$LEASE"
step get-leased-json get leased/1 -w json
step lease-timetolive lease timetolive "$LEASE"
step lease-timetolive-keys lease timetolive "$LEASE" --keys
step lease-keep-alive-once lease keep-alive --once "$LEASE"
step lease-list lease list
step lease-revoke lease revoke "$LEASE"
step get-leased-after-revoke get leased/ --prefix
step lease-timetolive-revoked lease timetolive "$LEASE"
step lease-revoke-missing lease revoke "$LEASE"
step lease-keep-alive-missing lease keep-alive --once "$LEASE"
step put-missing-lease put k v --lease=1234abcd
step_in txn-missing-lease $'\nput k v --lease=1234abcd\n\n\n' txn -i
step lease-list-empty lease list

# ---- watch: from a revision, prefixes, previous values, resuming -------------------------------
W=$(revision_now)
bg_start watch-key watch w/1 --rev="$((W + 1))"
bg_start watch-prefix-prev-kv watch w/ --prefix --prev-kv --rev="$((W + 1))"
step watched-put-1 put w/1 a
step watched-put-2 put w/2 b
step watched-put-3 put w/1 c
step watched-del del w/ --prefix
bg_until watch-key 9
bg_until watch-prefix-prev-kv 22
# A watch started after the writes, from a revision between them, replays what followed.
bg_start watch-resume watch w/ --prefix --rev="$((W + 2))"
bg_until watch-resume 12
bg_start watch-range watch w/1 w/2 --rev="$((W + 1))"
bg_until watch-range 9

# ---- lock and elect ----------------------------------------------------------------------------
step lock-run lock lk-once echo held
bg_start lock-holder lock lk-shared
bg_wait lock-holder 1
bg_start lock-waiter lock lk-shared echo second
bg_until lock-holder 1
bg_until lock-waiter 2
bg_start elect-campaigner elect el-x alice
bg_wait elect-campaigner 2
bg_start elect-observer elect -l el-x
bg_until elect-observer 2
bg_until elect-campaigner 2

# ---- members and endpoints ---------------------------------------------------------------------
step member-list member list
step member-list-json member list -w json
step endpoint-status endpoint status
step endpoint-status-json endpoint status -w json
step endpoint-status-cluster endpoint status --cluster
# The endpoint written as a URL (the later --endpoints wins), as many users write it.
step endpoint-status-url --endpoints="http://$EP" endpoint status
step get-url --endpoints="http://$EP" get nothing-here
step endpoint-health endpoint health
step endpoint-health-cluster endpoint health --cluster
step endpoint-hashkv endpoint hashkv
step alarm-list alarm list

# ---- compaction and revisions out of reach -----------------------------------------------------
step put-z1 put z/1 one
step put-z2 put z/1 two
C=$(revision_now)
step compaction compaction "$((C - 1))"
step get-compacted-revision get z/1 --rev="$((C - 2))"
step get-at-compaction-revision get z/1 --rev="$((C - 1))"
step get-future-revision get z/1 --rev="$((C + 100))"
step compaction-again compaction "$((C - 2))"
step compaction-future compaction "$((C + 100))"
bg_start watch-compacted watch z/1 --rev=2
bg_until watch-compacted 1

# ---- bad input ---------------------------------------------------------------------------------
step put-empty-key put "" v
step get-empty-key get ""
step del-empty-key del ""
step get-reversed-range get b a
step del-reversed-range del b a
head -c 1700000 /dev/zero | tr '\0' x >"$STEPS/.oversized"
step_file put-oversized "$STEPS/.oversized" put big
step get-oversized-absent get big --keys-only
step get-negative-limit get z/ --prefix --limit=-1
step get-bad-sort get a --sort-by=SIZE
step lease-grant-zero lease grant 0
alias_lease "$(lease_of_last)" "<LEASE_2>"
step lease-timetolive-bad-id lease timetolive nothex
step put-ignore-value-missing put nothing-here --ignore-value
step put-for-ignore put iv/1 first
step put-ignore-value put iv/1 --ignore-value
step get-after-ignore-value get iv/1 -w json
step put-ignore-lease-missing put iv/2 v --ignore-lease
step get-negative-revision get iv/1 --rev=-1
step compaction-physical compaction --physical "$(revision_now)"

# ---- what raftkv does not serve, and auth with auth off ----------------------------------------
step defrag defrag
step snapshot-save snapshot save "$STEPS/.snapshot.db"
step user-list user list
step role-list role list
step auth-disable auth disable
step move-leader-unknown move-leader ffff
