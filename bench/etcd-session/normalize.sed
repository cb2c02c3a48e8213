# Rules bench/etcd-compare-session.sh applies (sed -E) to both systems' step outputs, after
# replacing the ids the session saw a system choose (lease ids, endpoints) by names.
# Only what legitimately differs from one run or one server to the next is rewritten.

# etcdctl's own log lines: the time and the client's random target name.
s/"ts":"[^"]*"/"ts":"<TIME>"/g
s/"ts":[0-9.]+/"ts":<TIME>/g
s#"target":"endpoint://client-[0-9a-f-]*/#"target":"endpoint://client-<UUID>/#g
# How long a health check took.
s/took = [0-9.]+(µs|ms|s|ns)/took = <DURATION>/g
# Cluster and member ids: in JSON, in `-w fields`, in `member list` and `endpoint status`.
s/"(cluster_id|member_id|ID|leader)":[0-9]+/"\1":<ID>/g
s/^"(ClusterID|MemberID)" : [0-9]+$/"\1" : <ID>/
s/^[0-9a-f]+, (started|unstarted), /<ID>, \1, /
# The Raft term and index, the version string and the database's size in JSON.
s/"raft_term":[0-9]+/"raft_term":<TERM>/g
s/^"RaftTerm" : [0-9]+$/"RaftTerm" : <TERM>/
s/"(raftTerm|raftIndex|raftAppliedIndex|dbSize|dbSizeInUse)":[0-9]+/"\1":<N>/g
s/"version":"[0-9][^"]*"/"version":"<VERSION>"/g
# The same in `endpoint status`'s table: ID, version, db size, leader, learner, term, index,
# applied index, errors.
s/^(<ENDPOINT>|http:\/\/<ENDPOINT>), [0-9a-f]+, [^,]+, [0-9.]+ [kMG]?B, (true|false), (true|false), [0-9]+, [0-9]+, [0-9]+, /\1, <ID>, <VERSION>, <SIZE>, \2, \3, <TERM>, <INDEX>, <INDEX>, /
# Time left on a lease: a second may pass between grant and question.
s/remaining\(([0-9]+)s\)/remaining(<SECONDS>s)/g
s/"TTL":[0-9]+,"granted-ttl"/"TTL":<SECONDS>,"granted-ttl"/g
# Keys etcdctl's lock and elect create: the name, then the session's lease id in hex.
s#^(lk-[a-z]+|el-[a-z]+)/[0-9a-f]+$#\1/<SESSION_LEASE>#
# The hash of the key space: each system hashes its own storage layout, so only its presence
# compares.
s/^(<ENDPOINT>), [0-9]+$/\1, <HASH>/
