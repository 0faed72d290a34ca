#!/usr/bin/env python3
"""The Python peer of the ChannelsRedis benchmark: channels_redis 4.3.0's RedisPubSubChannelLayer.

Runs one workload through the layer's public API (new_channel, send, receive, group_add,
group_send) on asyncio and prints ONE JSON line with "impl": "channels_redis". The workloads,
flags and the JSON schema are the ones documented at the top of .ci/bench/run; the C baseline
(Sources/HiredisBaseline/main.c) and the Swift bench (channels-redis-bench) do the same work.

The message is {"type": "test.message", "text": <50-char str>}; the first 20 characters of
"text" are a zero-padded CLOCK_MONOTONIC timestamp in nanoseconds (zeros outside the latency
workload), so the serialized bytes are exactly what the C baseline publishes.
"""

import argparse
import asyncio
import json
import math
import sys
import time

TEXT_LEN = 50
TS_DIGITS = 20


def make_message(ts=0):
    return {"type": "test.message", "text": f"{ts:0{TS_DIGITS}d}" + "x" * (TEXT_LEN - TS_DIGITS)}


def message_ts(message):
    return int(message["text"][:TS_DIGITS])


def pct_us(sorted_ns, p):
    """Nearest-rank percentile of nanosecond samples, in microseconds (same rule as the C)."""
    n = len(sorted_ns)
    if n == 0:
        return 0.0
    k = min(max(math.ceil(p / 100.0 * n), 1), n)
    return round(sorted_ns[k - 1] / 1000.0, 1)


def split(total, parts):
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


async def warm_up(layer, channel):
    """One message there and back before the clock starts.

    channels_redis starts its reader task before the first SUBSCRIBE is confirmed; that task
    then sleeps 0.1 s, so the first messages after new_channel() wait up to 100 ms. Every
    program in this benchmark measures a running layer, not that start-up.
    """
    await layer.send(channel, make_message())
    await layer.receive(channel)


async def wait_for(awaitable, timeout, what):
    try:
        return await asyncio.wait_for(awaitable, timeout)
    except asyncio.TimeoutError:
        raise RuntimeError(f"timed out: {what}") from None


async def throughput(layer, args, extra_channels=0):
    result = {"count": args.count, "senders": args.senders}
    if extra_channels:
        t = time.perf_counter()
        for _ in range(extra_channels):
            await layer.new_channel()
        result["extra_channels"] = extra_channels
        result["subscribe_seconds"] = round(time.perf_counter() - t, 4)
    channel = await layer.new_channel()
    await warm_up(layer, channel)
    message = make_message()

    async def sender(n):
        for _ in range(n):
            await layer.send(channel, message)

    async def receiver():
        for _ in range(args.count):
            await layer.receive(channel)

    start = time.perf_counter()
    recv = asyncio.ensure_future(receiver())
    senders = [asyncio.ensure_future(sender(n)) for n in split(args.count, args.senders) if n]
    await wait_for(asyncio.gather(recv, *senders), args.timeout, "throughput")
    secs = time.perf_counter() - start
    result.update(seconds=round(secs, 4), msgs_per_sec=round(args.count / secs, 1))
    return result


async def pingpong(layer, args):
    channel = await layer.new_channel()
    await warm_up(layer, channel)
    message = make_message()
    rtts = []

    async def run():
        for _ in range(args.count):
            t = time.monotonic_ns()
            await layer.send(channel, message)
            await layer.receive(channel)
            rtts.append(time.monotonic_ns() - t)

    start = time.perf_counter()
    await wait_for(run(), args.timeout, "pingpong")
    secs = time.perf_counter() - start
    rtts.sort()
    return {
        "count": args.count,
        "seconds": round(secs, 4),
        "msgs_per_sec": round(args.count / secs, 1),
        "rtt_p50_us": pct_us(rtts, 50),
        "rtt_p99_us": pct_us(rtts, 99),
    }


async def latency(layer, args):
    channel = await layer.new_channel()
    await warm_up(layer, channel)
    total = int(args.rate * args.seconds + 0.5)
    samples = []
    last_recv = [0]
    all_received = asyncio.Event()

    async def receiver():
        while True:
            m = await layer.receive(channel)
            now = time.monotonic_ns()
            samples.append(now - message_ts(m))
            last_recv[0] = now
            if len(samples) == total:
                all_received.set()
                return

    recv = asyncio.ensure_future(receiver())
    pending = set()
    start_ns = time.monotonic_ns()
    max_lag = 0
    sent = 0
    last_send = start_ns
    try:
        # Each send starts at its absolute deadline start + i/rate, without waiting for the
        # previous one to finish: a late sender catches up instead of drifting, and the time a
        # message waits inside the layer (channels_redis serializes PUBLISHes on a lock) counts.
        for i in range(total):
            deadline = start_ns + int(i * 1e9 / args.rate)
            now = time.monotonic_ns()
            if deadline > now:
                await asyncio.sleep((deadline - now) / 1e9)
            t = time.monotonic_ns()
            max_lag = max(max_lag, t - deadline)
            task = asyncio.ensure_future(layer.send(channel, make_message(t)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
            last_send = t
            if (t - start_ns) / 1e9 > args.timeout:
                raise RuntimeError("timed out: latency sender")
        if pending:
            await wait_for(asyncio.gather(*pending), args.timeout, "latency sends")
        try:
            await asyncio.wait_for(all_received.wait(), 2.0)
        except asyncio.TimeoutError:
            pass  # report with what arrived; received < sent shows the loss
    finally:
        for task in list(pending):
            task.cancel()
        recv.cancel()
        try:
            await recv
        except asyncio.CancelledError:
            pass
    send_secs = (last_send - start_ns) / 1e9
    recv_secs = (last_recv[0] - start_ns) / 1e9
    got = sorted(samples)
    return {
        "rate": args.rate,
        "seconds": args.seconds,
        "sent": sent,
        "received": len(got),
        "achieved_rate": round((sent - 1) / send_secs, 1) if send_secs > 0 else 0.0,
        "recv_rate": round(len(got) / recv_secs, 1) if samples and recv_secs > 0 else 0.0,
        "p50_us": pct_us(got, 50),
        "p99_us": pct_us(got, 99),
        "p999_us": pct_us(got, 99.9),
        "max_us": pct_us(got, 100),
        "max_send_lag_us": round(max_lag / 1000.0, 1),
    }


async def fanout(layer, args):
    group = "benchgroup"
    members = []
    for _ in range(args.members):
        ch = await layer.new_channel()
        await layer.group_add(group, ch)
        members.append(ch)
    message = make_message()
    # warm-up (see warm_up): one group message, received by every member
    await layer.group_send(group, message)
    await wait_for(asyncio.gather(*(layer.receive(ch) for ch in members)), args.timeout, "fanout warm-up")
    delivered = [0]

    async def consumer(ch):
        for _ in range(args.count):
            await layer.receive(ch)
            delivered[0] += 1

    async def sender():
        for _ in range(args.count):
            await layer.group_send(group, message)

    start = time.perf_counter()
    consumers = [asyncio.ensure_future(consumer(ch)) for ch in members]
    await wait_for(asyncio.gather(sender(), *consumers), args.timeout, "fanout")
    secs = time.perf_counter() - start
    return {
        "members": args.members,
        "count": args.count,
        "deliveries": delivered[0],
        "seconds": round(secs, 4),
        "msgs_per_sec": round(args.count / secs, 1),
        "deliveries_per_sec": round(delivered[0] / secs, 1),
    }


async def main_async(args):
    from channels_redis.pubsub import RedisPubSubChannelLayer

    layer = RedisPubSubChannelLayer(hosts=[f"redis://{args.host}:{args.port}"])
    try:
        if args.workload == "throughput":
            return await throughput(layer, args)
        if args.workload == "scale":
            return await throughput(layer, args, extra_channels=args.extra_channels)
        if args.workload == "pingpong":
            return await pingpong(layer, args)
        if args.workload == "latency":
            return await latency(layer, args)
        if args.workload == "fanout":
            return await fanout(layer, args)
        raise ValueError(args.workload)
    finally:
        try:
            await asyncio.wait_for(layer.flush(), 5)
        except Exception:  # noqa: BLE001 - closing is best effort; the figures are already taken
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--workload", required=True,
                   choices=["throughput", "pingpong", "latency", "fanout", "scale"])
    p.add_argument("--count", type=int, default=5000)
    p.add_argument("--senders", type=int, default=8)
    p.add_argument("--rate", type=float, default=1000)
    p.add_argument("--seconds", type=float, default=3)
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--extra-channels", type=int, default=0)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--json", action="store_true", help="accepted for symmetry; output is always JSON")
    args = p.parse_args()
    if args.count < 1 or args.senders < 1 or args.members < 1 or args.rate <= 0 or args.seconds <= 0:
        p.error("--count, --senders, --members, --rate and --seconds must be positive")

    out = {"impl": "channels_redis", "workload": args.workload}
    try:
        out.update(ok=True, **asyncio.run(main_async(args)))
        code = 0
    except Exception as e:  # noqa: BLE001 - any failure is reported as a JSON line
        out.update(ok=False, error=f"{type(e).__name__}: {e}")
        code = 1
    try:
        import channels_redis
        import redis

        out["version"] = f"channels_redis {channels_redis.__version__}, redis-py {redis.__version__}"
    except Exception:  # noqa: BLE001
        pass
    print(json.dumps(out, separators=(",", ":")), flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
