#!/usr/bin/env python3
"""Lines a paced run's requests up with what the servers were doing, second by second.

Usage: timeline.py SAMPLES_CSV INTERVAL_SECONDS [--cpu CPU_FILE] NODE_LOG...

SAMPLES_CSV is `raftkv bench --samples` output; the logs are the nodes' (INFO level gives
the snapshots; `raftkv::server::retention=debug` adds the leader's compactions and
`raftkv::server::state_hashes=debug` the consistency checks' hashing). Prints, per
interval, the p99 of every request and of those that overlapped no snapshot encoding, the
share of the interval some node spent encoding, and the p99 of the requests' own service time
(without the wait of a paced request for its turn); then the slowest seconds of the run and
what was going on in each, and what the consistency checks' hashing cost the requests that
overlapped it. CPU_FILE holds the machine's /proc/stat `cpu` line about once a second, each
after its Unix time (steady.sh writes it): the slowest seconds then show how busy the machine
was and how much of its time the hypervisor gave to others (steal).
"""

import bisect
import csv
import datetime
import re
import sys

LINE = re.compile(r"^(\S+Z)\s+(?:INFO|DEBUG)\s+(\S+): (snapshot taken|"
                  r"history compacted by retention|state hashed)(.*)$")
FIELD = re.compile(r"(\w+)=(\S+)")
SLOWEST_SECONDS = 15


def unix_micros(stamp):
    moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return round(moment.timestamp() * 1e6)


def percentile(values, fraction):
    if not values:
        return 0
    values = sorted(values)
    return values[min(len(values) - 1, int(fraction * len(values)))]


def read_events(logs):
    """(encodings, hand_overs, hashings, recorded, compactions): a snapshot's image and
    encoding, then its hand-over to the node (staging its file), and a consistency check's
    hashing as (start, end, node) windows; the instants each node recorded a snapshot and the
    leader compacted the history as (at, node)."""
    encodings, hand_overs, hashings, recorded, compactions = [], [], [], [], []
    for node, log in enumerate(logs, start=1):
        for line in open(log, errors="replace"):
            match = LINE.match(line.strip())
            if not match:
                continue
            at = unix_micros(match.group(1))
            fields = dict(FIELD.findall(match.group(4)))
            if match.group(3) == "snapshot taken":
                image = int(fields.get("image_us", 0))
                encode = int(fields.get("encode_us", 0))
                hand_over = int(fields.get("hand_over_us", 0))
                start = at - image - encode - hand_over
                encodings.append((start, start + image + encode, node))
                hand_overs.append((start + image + encode, at, node))
                recorded.append((at, node))
            elif match.group(3) == "state hashed":
                hashings.append((at - int(fields.get("hash_us", 0)), at, node))
            else:
                compactions.append((at, node))
    return (sorted(encodings), sorted(hand_overs), sorted(hashings), sorted(recorded),
            sorted(compactions))


def read_cpu(path):
    """[(unix micros, busy jiffies, steal jiffies, total jiffies)] from a CPU_FILE."""
    points = []
    for line in open(path, errors="replace"):
        fields = line.split()
        if len(fields) < 10 or fields[1] != "cpu":
            continue
        try:
            at = round(float(fields[0]) * 1e6)
            jiffies = [int(value) for value in fields[2:]]
        except ValueError:
            continue
        # user nice system idle iowait irq softirq steal [guest guest_nice, inside user]
        idle, steal = jiffies[3] + jiffies[4], jiffies[7]
        total = sum(jiffies[:8])
        points.append((at, total - idle - steal, steal, total))
    return points


def cpu_shares(points, begin, end):
    """(busy, steal) shares of the machine's time between the samples around [begin, end)."""
    before = [p for p in points if p[0] <= begin]
    after = [p for p in points if p[0] >= end]
    if not before or not after:
        return None
    first, last = before[-1], after[0]
    total = last[3] - first[3]
    if total <= 0:
        return None
    return (last[1] - first[1]) / total, (last[2] - first[2]) / total


class Windows:
    """Sorted (start, end, node) windows; which of them overlap a span."""

    def __init__(self, windows):
        self.windows = windows
        self.starts = [w[0] for w in windows]
        self.reach = []
        furthest = 0
        for w in windows:
            furthest = max(furthest, w[1])
            self.reach.append(furthest)

    def any(self, start, end):
        last = bisect.bisect_right(self.starts, end) - 1
        return last >= 0 and self.reach[last] >= start

    def nodes(self, start, end):
        last = bisect.bisect_right(self.starts, end) - 1
        found = set()
        while last >= 0 and self.reach[last] >= start:
            w = self.windows[last]
            if w[1] >= start:
                found.add(w[2])
            last -= 1
        return found

    def covered(self, start, end):
        """Microseconds of [start, end) inside at least one window."""
        spans = sorted((max(w[0], start), min(w[1], end)) for w in self.windows
                       if w[1] > start and w[0] < end)
        total, reached = 0, start
        for a, b in spans:
            a = max(a, reached)
            if b > a:
                total += b - a
                reached = b
        return total


def main():
    samples_path, interval = sys.argv[1], float(sys.argv[2])
    logs, cpu = sys.argv[3:], []
    if logs[:1] == ["--cpu"]:
        cpu, logs = read_cpu(logs[1]), logs[2:]
    encodings, hand_overs, hashings, recorded, compactions = read_events(logs)
    encoding, handing, hashing = Windows(encodings), Windows(hand_overs), Windows(hashings)
    rows = []
    with open(samples_path) as handle:
        for row in csv.DictReader(handle):
            end, latency = int(row["completed_unix_micros"]), int(row["latency_micros"])
            service = int(row.get("service_micros") or latency)
            rows.append((end - latency, end, latency, service, row.get("read") == "1"))
    if not rows:
        print("timeline: no samples")
        return
    rows.sort()
    run_start = rows[0][0]
    step = int(interval * 1e6)
    buckets = {}
    for start, end, latency, service, read in rows:
        buckets.setdefault((start - run_start) // step, []).append(
            (latency, service, read, encoding.any(start, end)))
    print(f"timeline per {interval:g} s (by intended start): p99 of all, of reads, of writes,"
          " of requests overlapping no encoding; service p99; time some node was encoding")
    print(f"{'#':>4} {'ops':>8} {'p99':>7} {'reads':>7} {'writes':>7} {'no enc':>7} "
          f"{'service':>7} {'encoding':>8}  (ms)")
    for number in sorted(buckets):
        bucket = buckets[number]
        begin = run_start + number * step
        share = encoding.covered(begin, begin + step) / step
        print(f"{number + 1:>4} {len(bucket):>8} "
              f"{percentile([b[0] for b in bucket], 0.99) / 1000:>7.2f} "
              f"{percentile([b[0] for b in bucket if b[2]], 0.99) / 1000:>7.2f} "
              f"{percentile([b[0] for b in bucket if not b[2]], 0.99) / 1000:>7.2f} "
              f"{percentile([b[0] for b in bucket if not b[3]], 0.99) / 1000:>7.2f} "
              f"{percentile([b[1] for b in bucket], 0.99) / 1000:>7.2f} {share:>8.0%}")

    seconds = {}
    for start, end, latency, service, read in rows:
        seconds.setdefault((start - run_start) // 1_000_000, []).append((latency, service))
    span = max(1, len(seconds))
    print(f"\nthe {SLOWEST_SECONDS} slowest seconds (p99 of requests started in them) and what "
          f"overlapped them; over the run, {len(recorded)} snapshots recorded and "
          f"{len(compactions)} compactions ({len(compactions) / span:.2f} a second)")
    print(f"{'second':>6} {'p99 ms':>7} {'max ms':>7} {'service p99':>11}  events")
    slowest = sorted(seconds, key=lambda s: -percentile([x[0] for x in seconds[s]], 0.99))
    for second in slowest[:SLOWEST_SECONDS]:
        bucket = seconds[second]
        begin = run_start + second * 1_000_000
        end = begin + 1_000_000
        events = []
        for name, windows in (("encoding", encoding), ("handing over", handing),
                              ("hashing", hashing)):
            nodes = windows.nodes(begin, end)
            if nodes:
                events.append(f"{name} on " + ",".join(map(str, sorted(nodes))))
        nodes = sorted({node for at, node in recorded if begin <= at < end})
        if nodes:
            events.append("snapshot recorded on " + ",".join(map(str, nodes)))
        compacted = sum(1 for at, _ in compactions if begin <= at < end)
        if compacted:
            events.append(f"{compacted} compaction(s)")
        shares = cpu_shares(cpu, begin, end)
        if shares:
            events.append(f"machine busy {shares[0]:.0%}, steal {shares[1]:.0%}")
        print(f"{second + 1:>6} {percentile([x[0] for x in bucket], 0.99) / 1000:>7.1f} "
              f"{max(x[0] for x in bucket) / 1000:>7.1f} "
              f"{percentile([x[1] for x in bucket], 0.99) / 1000:>11.1f}  "
              + ("; ".join(events) or "nothing logged"))

    # What a snapshot's recording costs the requests sent around it, per node.
    sends = sorted((end - service, service) for _, end, _, service, _ in rows)
    send_times = [s[0] for s in sends]
    print("\nslowest request sent within 50 ms of a node recording a snapshot (service time, "
          "ms), against the run's service p99.9 "
          f"{percentile([s[1] for s in sends], 0.999) / 1000:.1f}")
    for node in sorted({node for _, node in recorded}):
        worst = []
        for at, _ in (r for r in recorded if r[1] == node):
            low = bisect.bisect_left(send_times, at - 50_000)
            high = bisect.bisect_left(send_times, at + 50_000)
            if high > low:
                worst.append(max(s[1] for s in sends[low:high]) / 1000)
        if worst:
            print(f"  node {node}: {len(worst)} snapshots, median {percentile(worst, 0.5):.1f}, "
                  f"max {max(worst):.1f}")


    if cpu:
        shares = cpu_shares(cpu, cpu[0][0], cpu[-1][0])
        if shares:
            print(f"\nthe machine over the run: busy {shares[0]:.0%}, steal {shares[1]:.0%}")

    # What the consistency checks' hashing (every member at once) costs the requests.
    if hashings:
        during, rest = [], []
        for start, end, latency, _, _ in rows:
            (during if hashing.any(start, end) else rest).append(latency)
        took = sorted((w[1] - w[0]) / 1000 for w in hashings)
        print(f"\nconsistency checks: {len(hashings)} hashings, median {percentile(took, 0.5):.0f} "
              f"ms, max {took[-1]:.0f} ms; p99 of the {len(during)} requests overlapping one "
              f"{percentile(during, 0.99) / 1000:.1f} ms, of the rest "
              f"{percentile(rest, 0.99) / 1000:.1f} ms")


if __name__ == "__main__":
    main()
