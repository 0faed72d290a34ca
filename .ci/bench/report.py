#!/usr/bin/env python3
"""Helpers of .ci/bench/run: check one program's JSON line, convert redis-benchmark's CSV, and
print the side-by-side markdown table. Standard library only; the schema is documented at the
top of .ci/bench/run.

  report.py validate --impl IMPL --workload W [--rep N] < program-stdout   -> one JSON line
  report.py rb --clients C --pipeline P --count N [--rep N] < redis-benchmark --csv output
  report.py table RESULTS.jsonl
  report.py summary < one JSON line                                       -> one human line
"""

import argparse
import csv
import json
import math
import statistics
import sys

# Fields every ok line of a workload must carry (numbers unless noted). Extra fields are allowed.
REQUIRED = {
    "throughput": ["count", "senders", "seconds", "msgs_per_sec"],
    "pingpong": ["count", "seconds", "msgs_per_sec"],
    "latency": ["rate", "seconds", "sent", "received", "achieved_rate", "recv_rate",
                "p50_us", "p99_us", "p999_us", "max_us", "max_send_lag_us"],
    "fanout": ["members", "count", "deliveries", "seconds", "msgs_per_sec", "deliveries_per_sec"],
    "fanout-floor": ["members", "count", "deliveries", "seconds", "msgs_per_sec", "deliveries_per_sec", "cpu_us_per_msg"],
    "send-floor": ["count", "senders", "seconds", "msgs_per_sec", "cpu_us_per_msg"],
    "scale": ["extra_channels", "count", "senders", "subscribe_seconds", "seconds", "msgs_per_sec"],
    "memory": ["channels", "rss_before_bytes", "rss_after_bytes", "bytes_per_channel"],
    "publish": ["clients", "pipeline", "count", "msgs_per_sec"],
}

IMPLS = ["swift", "c-hiredis", "channels_redis", "redis-benchmark"]
IMPL_TITLES = {"swift": "Swift", "c-hiredis": "C hiredis (limit)",
               "channels_redis": "channels_redis", "redis-benchmark": "redis-benchmark"}


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check(obj, impl, workload):
    """Returns a list of problems with one result object (empty if it is valid and ok)."""
    if not isinstance(obj, dict):
        return ["not a JSON object"]
    problems = []
    if obj.get("impl") != impl:
        problems.append(f"impl is {obj.get('impl')!r}, expected {impl!r}")
    if obj.get("workload") != workload:
        problems.append(f"workload is {obj.get('workload')!r}, expected {workload!r}")
    if obj.get("ok") is not True:
        problems.append(f"ok is not true: {obj.get('error', '(no error given)')}")
        return problems
    for field in REQUIRED.get(workload, []):
        if not is_number(obj.get(field)):
            problems.append(f"field {field!r} missing or not a finite number")
    if problems:
        return problems
    if workload in ("fanout", "fanout-floor") and obj["deliveries"] != obj["count"] * obj["members"]:
        problems.append(f"deliveries {obj['deliveries']} != count x members")
    if workload in ("throughput", "scale", "pingpong", "fanout", "fanout-floor", "send-floor", "publish") and obj["msgs_per_sec"] <= 0:
        problems.append("msgs_per_sec is not positive")
    if workload == "latency" and obj["received"] == 0:
        problems.append("no message received")
    return problems


def cmd_validate(args):
    text = sys.stdin.read()
    lines = [l for l in text.splitlines() if l.strip()]
    obj, problems = None, []
    if not lines:
        problems = ["no output"]
    else:
        try:
            obj = json.loads(lines[-1])
            problems = check(obj, args.impl, args.workload)
        except json.JSONDecodeError as e:
            problems = [f"last line is not JSON ({e}): {lines[-1][:200]!r}"]
    if problems:
        out = {"impl": args.impl, "workload": args.workload, "ok": False,
               "error": "; ".join(problems)}
        if isinstance(obj, dict):
            out["raw"] = obj
    else:
        out = obj
    out["rep"] = args.rep
    print(json.dumps(out, separators=(",", ":")))
    if problems:
        print(f"INVALID {args.impl} {args.workload}: {'; '.join(problems)}", file=sys.stderr)
        return 1
    return 0


def cmd_rb(args):
    out = {"impl": "redis-benchmark", "workload": "publish", "clients": args.clients,
           "pipeline": args.pipeline, "count": args.count, "rep": args.rep}
    rows = list(csv.reader(sys.stdin.read().splitlines()))
    try:
        header, row = rows[0], rows[-1]
        rec = dict(zip(header, row))
        rps = float(rec["rps"])
        if not math.isfinite(rps) or rps <= 0:
            raise ValueError(f"rps {rec['rps']!r}")
        out.update(ok=True, msgs_per_sec=round(rps, 1))
        for k, name in (("p50_latency_ms", "p50_us"), ("p99_latency_ms", "p99_us")):
            if k in rec:
                out[name] = round(float(rec[k]) * 1000.0, 1)
    except (IndexError, KeyError, ValueError) as e:
        out.update(ok=False, error=f"could not read redis-benchmark CSV: {e}")
    print(json.dumps(out, separators=(",", ":")))
    return 0 if out["ok"] else 1


# ---------------------------------------------------------------------------------------------
# table

# Fields older result lines lack, with the value they had then.
FIELD_DEFAULTS = {"busy_poll_us": 0, "tls": False, "cluster": False, "spread": 1, "window": 1000, "layer": "redis",
                  "consumer_thread": False}


def median_of(results, impl, workload, field, **match):
    vals = [r[field] for r in results
            if r.get("ok") is True and r.get("impl") == impl and r.get("workload") == workload
            and all(r.get(k, FIELD_DEFAULTS.get(k)) == v for k, v in match.items()) and is_number(r.get(field))]
    return statistics.median(vals) if vals else None


def fmt(v, kind):
    if v is None:
        return "—"
    if kind == "rate":
        return f"{v:,.0f}"
    if kind == "us":
        return f"{v:,.1f}" if v < 1000 else f"{v:,.0f}"
    if kind == "seconds":
        return f"{v:,.2f}"
    if kind == "cpu":
        return f"{v:,.3f}" if v < 10 else f"{v:,.1f}"
    if kind == "bytes":
        return f"{v:,.0f}"
    return f"{v:g}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    r = a / b
    return f"{r:.2f}×" if r >= 0.01 else f"{r:.4f}×"


def rows_for(results):
    """(label, better, kind, {impl: (workload, field, match)})"""
    rows = []

    def same(workload, field, on_loop=False, busy_poll=0, **match):
        row = {i: (workload, field, match) for i in ("swift", "c-hiredis", "channels_redis")}
        row["swift"] = (workload, field, {**match, "on_loop": on_loop, "busy_poll_us": busy_poll, "tls": False})
        return row

    # Swift's runs over rediss:// (the others have none): one column, beside the plain row.
    tls = any(r.get("tls") is True for r in results)

    def over_tls(workload, field, **match):
        return {"swift": (workload, field, {**match, "on_loop": False, "busy_poll_us": 0, "tls": True})}

    # The Swift layer's Configuration.busyPoll of the extra rows (one value per run), if any.
    polls = sorted({r["busy_poll_us"] for r in results if r.get("impl") == "swift"
                    and is_number(r.get("busy_poll_us")) and r["busy_poll_us"] > 0})
    poll = polls[0] if polls else None
    polled = f"Swift: busyPoll {poll} µs" if poll else ""

    # The main throughput rows: 8 Swift senders, 1,000 C PUBLISHes in flight (the awaited-send
    # rows below run other concurrencies of the same workload).
    tp = same("throughput", "msgs_per_sec")
    tp["swift"] = ("throughput", "msgs_per_sec", {"senders": 8, "send_batch": 1, "busy_poll_us": 0, "tls": False})
    tp["c-hiredis"] = ("throughput", "msgs_per_sec", {"window": 1000})
    tp["redis-benchmark"] = ("publish", "msgs_per_sec", {"clients": 50, "pipeline": 16})
    rows.append(("throughput, msgs/s received (many senders, one send each)", "↑", "rate", tp))
    if tls:
        rows.append(("throughput, msgs/s received (many senders, one send each; Swift over TLS)", "↑", "rate",
                     over_tls("throughput", "msgs_per_sec", send_batch=1)))
    if poll:
        tq = dict(tp)
        tq["swift"] = ("throughput", "msgs_per_sec", {"senders": 8, "send_batch": 1, "busy_poll_us": poll, "tls": False})
        rows.append((f"throughput, msgs/s received (many senders, one send each; {polled})", "↑", "rate", tq))
    batches = sorted({r["send_batch"] for r in results
                      if r.get("workload") == "throughput" and is_number(r.get("send_batch")) and r["send_batch"] > 1})
    for batch in batches:
        tb = same("throughput", "msgs_per_sec")
        tb["swift"] = ("throughput", "msgs_per_sec", {"send_batch": batch, "tls": False})
        tb["c-hiredis"] = ("throughput", "msgs_per_sec", {"window": 1000})
        tb["redis-benchmark"] = ("publish", "msgs_per_sec", {"clients": 50, "pipeline": 16})
        rows.append((f"throughput, msgs/s received (Swift: send(contentsOf:) of {batch}; C pipelined)", "↑", "rate", tb))
    # Awaited sends: S tasks each awaiting its send() against C keeping S PUBLISHes in flight
    # (one new one per reply): the same work in flight on both sides. With CPU per message.
    windows = sorted({r["window"] for r in results if r.get("impl") == "c-hiredis" and r.get("workload") == "throughput"
                      and is_number(r.get("window")) and r["window"] != 1000})
    for w in windows:
        for field, kind, what in (("msgs_per_sec", "rate", "msgs/s received"), ("cpu_us_per_msg", "cpu", "CPU µs per message")):
            aw = same("throughput", field)
            aw["swift"] = ("throughput", field, {"senders": w, "send_batch": 1, "busy_poll_us": 0, "tls": False})
            aw["c-hiredis"] = ("throughput", field, {"window": w})
            del aw["channels_redis"]  # no such run of channels_redis
            tasks = "1 task awaiting each send" if w == 1 else f"{w} tasks awaiting each send"
            rows.append((f"{tasks} (C: window of {w}), {what}", "↓" if kind == "cpu" else "↑", kind, aw))
        # What bounds them (Swift only): the two hand-offs of an awaited send alone, task to a service thread and
        # back, with no Redis and no layer (send-floor).
        if any(r.get("impl") == "swift" and r.get("workload") == "send-floor" and r.get("senders") == w for r in results):
            for field, kind, what in (("msgs_per_sec", "rate", "round trips/s"), ("cpu_us_per_msg", "cpu", "CPU µs per round trip")):
                rows.append((f"{tasks}, hand-off floor (no Redis, no layer), {what}", "↓" if kind == "cpu" else "↑", kind,
                             {"swift": ("send-floor", field, {"senders": w, "layer": "none"})}))
    pp = same("pingpong", "msgs_per_sec")
    pp["redis-benchmark"] = ("publish", "msgs_per_sec", {"clients": 1, "pipeline": 1})
    rows.append(("ping-pong, msgs/s (one sender, wait for each)", "↑", "rate", pp))
    if tls:
        rows.append(("ping-pong, msgs/s (one sender, wait for each; Swift over TLS)", "↑", "rate",
                     over_tls("pingpong", "msgs_per_sec")))
    on_loop = any(r.get("on_loop") is True for r in results)
    if on_loop:
        pl = same("pingpong", "msgs_per_sec", on_loop=True)
        pl["redis-benchmark"] = ("publish", "msgs_per_sec", {"clients": 1, "pipeline": 1})
        rows.append(("ping-pong, msgs/s (Swift task on layer.taskExecutor)", "↑", "rate", pl))
    if poll:
        for loop in ((False, True) if on_loop else (False,)):
            pq = same("pingpong", "msgs_per_sec", on_loop=loop, busy_poll=poll)
            pq["redis-benchmark"] = ("publish", "msgs_per_sec", {"clients": 1, "pipeline": 1})
            where = "; task on layer.taskExecutor" if loop else ""
            rows.append((f"ping-pong, msgs/s ({polled}{where})", "↑", "rate", pq))
    rows.append(("ping-pong, CPU µs per message (one sender, wait for each)", "↓", "cpu", same("pingpong", "cpu_us_per_msg")))
    rates = sorted({r["rate"] for r in results if r.get("workload") == "latency" and is_number(r.get("rate"))})
    for rate in rates:
        for field, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
            rows.append((f"latency @{rate:,.0f}/s {name}, µs", "↓", "us", same("latency", field, rate=rate)))
        rows.append((f"latency @{rate:,.0f}/s sends started, msgs/s", "↑", "rate",
                     same("latency", "achieved_rate", rate=rate)))
        rows.append((f"latency @{rate:,.0f}/s received, msgs/s", "↑", "rate",
                     same("latency", "recv_rate", rate=rate)))
        # The C program handing each message to a consumer thread asleep on a condition variable, which
        # takes the receive time: the hand-off the default Swift layer's consumer task pays, beside it.
        if any(r.get("impl") == "c-hiredis" and r.get("workload") == "latency" and r.get("rate") == rate
               and r.get("consumer_thread") is True for r in results):
            for field, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
                ct = same("latency", field, rate=rate)
                ct["c-hiredis"] = ("latency", field, {"rate": rate, "consumer_thread": True})
                del ct["channels_redis"]  # no such run of channels_redis
                rows.append((f"latency @{rate:,.0f}/s {name}, µs (C: consumer on a second thread)", "↓", "us", ct))
        if tls:
            for field, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
                rows.append((f"latency @{rate:,.0f}/s {name}, µs (Swift over TLS)", "↓", "us",
                             over_tls("latency", field, rate=rate)))
        if on_loop:
            for field, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
                rows.append((f"latency @{rate:,.0f}/s {name}, µs (Swift tasks on layer.taskExecutor)", "↓", "us",
                             same("latency", field, on_loop=True, rate=rate)))
        if on_loop and poll:
            for field, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
                rows.append((f"latency @{rate:,.0f}/s {name}, µs ({polled}; tasks on layer.taskExecutor)", "↓", "us",
                             same("latency", field, on_loop=True, busy_poll=poll, rate=rate)))
    # Group fan-out: the C program's main rows keep 1,000 PUBLISHes in flight; its rows with a window
    # of 8 have the same work in flight as the 8 Swift senders each awaiting its groupSend.
    fan_windows = sorted({r["window"] for r in results if r.get("impl") == "c-hiredis" and r.get("workload") == "fanout"
                          and is_number(r.get("window")) and r["window"] != 1000})
    for k in sorted({r["members"] for r in results if r.get("workload") in ("fanout", "fanout-floor") and is_number(r.get("members"))}):
        fd = same("fanout", "deliveries_per_sec", members=k)
        fd["c-hiredis"] = ("fanout", "deliveries_per_sec", {"members": k, "window": 1000})
        rows.append((f"group fanout to {k:,} local channels, deliveries/s", "↑", "rate", fd))
        fc = same("fanout", "cpu_us_per_msg", members=k)
        fc["c-hiredis"] = ("fanout", "cpu_us_per_msg", {"members": k, "window": 1000})
        rows.append((f"group fanout to {k:,} local channels, CPU µs per group send", "↓", "cpu", fc))
        for w in fan_windows:
            if not any(r.get("impl") == "c-hiredis" and r.get("workload") == "fanout" and r.get("members") == k
                       and r.get("window") == w for r in results):
                continue
            for field, kind, what in (("deliveries_per_sec", "rate", "deliveries/s"), ("cpu_us_per_msg", "cpu", "CPU µs per group send")):
                fw = {"swift": ("fanout", field, {"members": k, "senders": w, "on_loop": False, "busy_poll_us": 0, "tls": False}),
                      "c-hiredis": ("fanout", field, {"members": k, "window": w})}
                rows.append((f"group fanout to {k:,} local channels, {w} sends in flight (C: window of {w}), {what}",
                             "↓" if kind == "cpu" else "↑", kind, fw))
        if poll:
            fp = same("fanout", "deliveries_per_sec", busy_poll=poll, members=k)
            fp["c-hiredis"] = ("fanout", "deliveries_per_sec", {"members": k, "window": 1000})
            rows.append((f"group fanout to {k:,} local channels, deliveries/s ({polled})", "↑", "rate", fp))
        # What bounds the rows above, without Redis (Swift only): the cheapest task hand-off, with no layer at
        # all (fanout-floor), and the layer's channel buffers and groups on their own (the in-memory layer).
        for workload, layer, what in (("fanout-floor", "none", "task hand-off floor (no Redis, no layer)"),
                                      ("fanout", "in-memory", "in-memory layer (no Redis)")):
            if not any(r.get("impl") == "swift" and r.get("workload") == workload and r.get("members") == k
                       and r.get("layer") == layer for r in results):
                continue
            for field, kind, unit in (("deliveries_per_sec", "rate", "deliveries/s"), ("cpu_us_per_msg", "cpu", "CPU µs per group send")):
                rows.append((f"group fanout to {k:,} local channels, {what}, {unit}", "↓" if kind == "cpu" else "↑", kind,
                             {"swift": (workload, field, {"members": k, "layer": layer, "on_loop": False, "busy_poll_us": 0, "tls": False})}))
    for k in sorted({r["extra_channels"] for r in results if r.get("workload") == "scale"
                     and is_number(r.get("extra_channels"))}):
        rows.append((f"throughput with {k:,} other channels subscribed, msgs/s", "↑", "rate",
                     same("scale", "msgs_per_sec", extra_channels=k)))
    for k in sorted({r["channels"] for r in results if r.get("workload") == "memory" and is_number(r.get("channels"))}):
        rows.append((f"memory per idle channel ({k:,} channels), bytes", "↓", "bytes",
                     same("memory", "bytes_per_channel", channels=k)))
        if any(r.get("workload") == "memory" and r.get("channels") == k and is_number(r.get("idle_cpu_percent")) for r in results):
            rows.append((f"idle layer with {k:,} channels (liveness probes on), CPU % of one core", "↓", "cpu",
                         same("memory", "idle_cpu_percent", channels=k)))
        if any(r.get("workload") == "memory" and r.get("channels") == k and is_number(r.get("resubscribe_seconds")) for r in results):
            rows.append((f"resubscribe all {k:,} channels after their connection is killed, s", "↓", "seconds",
                         same("memory", "resubscribe_seconds", channels=k)))
    # Every row above is about one channel (group) on one server: the spread and cluster runs below
    # must not count in its median, nor the runs without Redis in the Redis layer's rows.
    # Nor the C program's runs with --consumer-thread in its rows that do not ask for them.
    for _, _, _, spec in rows:
        if "swift" in spec:
            workload, field, match = spec["swift"]
            spec["swift"] = (workload, field, {"spread": 1, "cluster": False, "layer": "redis", **match})
        if "c-hiredis" in spec:
            workload, field, match = spec["c-hiredis"]
            spec["c-hiredis"] = (workload, field, {"consumer_thread": False, **match})

    # The load spread over K channels (groups), on one server and on the 3-primary cluster (Swift only).
    for k in sorted({r["spread"] for r in results if r.get("workload") == "throughput" and is_number(r.get("spread"))
                     and r["spread"] > 1}):
        for cluster, where in ((False, "one server"), (True, "3-primary cluster")):
            rows.append((f"throughput over {k:,} channels, {where}, msgs/s", "↑", "rate",
                         {"swift": ("throughput", "msgs_per_sec", {"spread": k, "cluster": cluster})}))
            rows.append((f"throughput over {k:,} channels, {where}, CPU µs per message", "↓", "cpu",
                         {"swift": ("throughput", "cpu_us_per_msg", {"spread": k, "cluster": cluster})}))
    for k in sorted({(r["spread"], r["members"]) for r in results if r.get("workload") == "fanout"
                     and is_number(r.get("spread")) and r["spread"] > 1 and is_number(r.get("members"))}):
        groups, members = k
        for cluster, where in ((False, "one server"), (True, "3-primary cluster")):
            rows.append((f"group fanout, {groups:,} groups of {members:,}, {where}, deliveries/s", "↑", "rate",
                         {"swift": ("fanout", "deliveries_per_sec", {"spread": groups, "members": members, "cluster": cluster})}))
    return rows


def cmd_table(args):
    results = []
    with open(args.results) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    results.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    head = ["metric", "better"] + [IMPL_TITLES[i] for i in IMPLS] + ["Swift / C", "Swift / channels_redis"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---", ":-:"] + ["--:"] * (len(head) - 2)) + "|")
    for label, better, kind, spec in rows_for(results):
        vals = {}
        for impl in IMPLS:
            if impl in spec:
                workload, field, match = spec[impl]
                vals[impl] = median_of(results, impl, workload, field, **match)
            else:
                vals[impl] = None
        cells = [label, better] + [fmt(vals[i], kind) for i in IMPLS]
        cells += [ratio(vals["swift"], vals["c-hiredis"]), ratio(vals["swift"], vals["channels_redis"])]
        print("| " + " | ".join(cells) + " |")
    reps = max((r.get("rep", 0) for r in results), default=0)
    print()
    print(f"Medians over {reps} repetition(s). ↑ higher is better, ↓ lower is better; the ratios are "
          "Swift's figure over the other's, whatever the direction. redis-benchmark PUBLISHes the "
          "same payload to a channel nobody subscribes to: its throughput row is -c 50 -P 16, its "
          "ping-pong row -c 1 -P 1 (request/s). C hiredis keeps a window of pipelined PUBLISHes "
          "instead of concurrent senders, and its fanout is one subscription copied to K "
          "in-process members.")
    warnings = []
    for r in results:
        if r.get("ok") is not True:
            warnings.append(f"FAILED {r.get('impl')} {r.get('workload')} rep {r.get('rep')}: {r.get('error')}")
        elif r.get("workload") == "latency" and r.get("received", 0) < r.get("sent", 0):
            warnings.append(f"lost {r['sent'] - r['received']} of {r['sent']} messages: {r['impl']} "
                            f"latency @{r['rate']:g}/s rep {r.get('rep')}")
    if warnings:
        print()
        for w in warnings:
            print(f"- {w}")
    return 0


def cmd_summary(args):
    try:
        r = json.loads(sys.stdin.read().strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        print("no JSON")
        return 0
    if not r.get("ok"):
        print(f"FAILED: {r.get('error')}")
        return 0
    w = r.get("workload")
    if w == "latency":
        print(f"@{r['rate']:g}/s p50 {r['p50_us']} µs, p99 {r['p99_us']} µs, p99.9 {r['p999_us']} µs, "
              f"achieved {r['achieved_rate']:,.0f}/s, received {r['received']}/{r['sent']}"
              + (" (consumer thread)" if r.get("consumer_thread") is True else ""))
    elif w in ("fanout", "fanout-floor"):
        where = " (floor)" if w == "fanout-floor" else f" ({r['layer']})" if r.get("layer", "redis") != "redis" else ""
        print(f"K={r['members']}{where}: {r['deliveries_per_sec']:,.0f} deliveries/s")
    elif w == "memory":
        print(f"{r['channels']} channels: {r['bytes_per_channel']:,.0f} bytes/channel")
    elif w == "scale":
        print(f"{r['msgs_per_sec']:,.0f} msgs/s with {r['extra_channels']} extra channels "
              f"(subscribed in {r['subscribe_seconds']} s)")
    else:
        print(f"{r['msgs_per_sec']:,.0f} msgs/s")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate")
    v.add_argument("--impl", required=True)
    v.add_argument("--workload", required=True)
    v.add_argument("--rep", type=int, default=1)
    r = sub.add_parser("rb")
    r.add_argument("--clients", type=int, required=True)
    r.add_argument("--pipeline", type=int, required=True)
    r.add_argument("--count", type=int, required=True)
    r.add_argument("--rep", type=int, default=1)
    t = sub.add_parser("table")
    t.add_argument("results")
    sub.add_parser("summary")
    args = p.parse_args()
    return {"validate": cmd_validate, "rb": cmd_rb, "table": cmd_table, "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
