"""The scenarios: each prepares what it needs (untimed), runs the load, checks what it measured
and returns its figures under fixed key names."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from . import prepare
from .node import NodeUnderTest, machine_busy_s
from .processes import run_all, split
from .search import search
from .stats import Checks, latency_ms

MIB = 1024 * 1024
# A `pairs` message moves 2 frames in (send, delivered) and 3 out (sent, message,
# status_update): 2.5 echo round trips of one frame in and one out.
FRAMES_PER_PAIRS_MESSAGE = 2.5
OUT_FRAMES_PER_S = 10_000  # transport: outbound frames asked for per second


@dataclass
class Options:
    workers: int = 2
    pairs: int = 100
    rate: float = 2000
    duration: float = 10
    sessions: int = 10_000
    conversations: int = 50
    missed: int = 20
    backlog: int = 100_000
    senders: int = 200
    window: int = 8
    members: int = 256
    group_senders: int = 4
    group_rate: float = 200
    max_p99_ms: float = 100
    messages: int = 1_000_000
    queries: int = 500
    search_users: int = 40


def mb(value: int | None) -> float | None:
    return None if value is None else round(value / MIB, 1)


async def run_measured(node: NodeUnderTest, specs: list[dict[str, Any]],
                       machine: dict[str, float] | None = None, **kwargs: Any
                       ) -> tuple[list[dict[str, Any]], float | None]:
    """`run_all`, and the node's CPU seconds over the measured phase (None without a pid).
    `machine` gets `cores`: how many of the machine's cores were busy meanwhile, on average,
    whoever used them."""
    cpu: dict[str, float | None] = {}

    def at(moment: str) -> None:
        cpu[moment] = node.cpu_s()
        cpu[f"{moment}_machine"] = machine_busy_s()
        cpu[f"{moment}_clock"] = time.monotonic()

    results = await run_all(specs, at_go=lambda: at("before"), at_results=lambda: at("after"),
                            **kwargs)
    if machine is not None:
        elapsed = (cpu["after_clock"] or 0) - (cpu["before_clock"] or 0)
        busy = (cpu["after_machine"] or 0) - (cpu["before_machine"] or 0)
        machine["cores"] = round(busy / elapsed, 2) if elapsed > 0 else 0.0
    before, after = cpu.get("before"), cpu.get("after")
    return results, None if before is None or after is None else after - before


def us_each(cpu_s: float | None, count: int) -> float | None:
    """Microseconds of node CPU per counted thing."""
    return None if cpu_s is None or not count else round(cpu_s * 1e6 / count, 1)


async def pairs(node: NodeUnderTest, o: Options, checks: Checks, rate: float | None = None,
                *, must_keep_up: bool = True, urls: list[str] | None = None) -> dict[str, Any]:
    """`urls`: where each pair's first and second side connect (a cluster's two nodes);
    both on the node by default."""
    rate = o.rate if rate is None else rate
    users = await prepare.users(node.url, 2 * o.pairs)
    couples = list(zip(users[0::2], users[1::2], strict=True))
    conversation_ids = await prepare.directs(node.url, couples)
    pairs_spec = [{"tokens": [a["token"], b["token"]], "conversation_id": cid}
                  for (a, b), cid in zip(couples, conversation_ids, strict=True)]
    parts = split(pairs_spec, o.workers)
    specs = [{"role": "pairs", "url": node.url, "urls": urls, "pairs": part,
              "duration": o.duration, "rate": rate * len(part) / len(pairs_spec)}
             for part in parts]
    machine: dict[str, float] = {}
    results, used = await run_measured(node, specs, machine)
    sent = sum(r["sent"] for r in results)
    delivered = sum(sum(r["received"]) for r in results)
    lost = sum(r["lost"] for r in results)
    figures = {
        "pairs": o.pairs, "rate": rate, "duration_s": o.duration, "sent": sent,
        "delivered": delivered, "lost": lost, "duplicated": sum(r["duplicated"] for r in results),
        "delivered_per_s": round(delivered / o.duration),
        "latency_ms": latency_ms([x for r in results for x in r["e2e_ns"]]),
        "server_cpu_us_per_delivered": us_each(used, delivered),
        # The load shares the two cores: with the node's, what the machine spends a message.
        "load_cpu_us_per_delivered": us_each(sum(r["cpu_s"] for r in results), delivered),
        # Everything the machine ran meanwhile (PostgreSQL and Redis too, when they are here):
        # near its core count, latency is time spent waiting for a core.
        "machine_cores_busy": machine.get("cores"),
        "server_rss_mb": mb(node.rss_bytes()),
    }
    check_common(checks, "pairs", results)
    checks.expect(lost == 0, f"pairs: {lost} committed messages never reached the other side")
    checks.expect(sum(r["wrong_markers"] for r in results) == 0,
                  "pairs: a delivered marker disagrees with the log at the end")
    checks.expect(not must_keep_up or sent >= 0.95 * rate * o.duration,
                  f"pairs: only {sent} of {rate * o.duration:.0f} sends were acknowledged")
    return figures


def check_common(checks: Checks, name: str, results: list[dict[str, Any]]) -> None:
    duplicated = sum(r["duplicated"] for r in results)
    checks.expect(duplicated == 0, f"{name}: {duplicated} messages arrived twice")
    gaps = sum(r["gaps"] for r in results)
    checks.expect(gaps == 0, f"{name}: {gaps} conversations with a gap in their seqs")
    unacked = sum(r["unacknowledged"] for r in results)
    checks.expect(unacked == 0, f"{name}: {unacked} sends never got their `sent`")
    errors = [e for r in results for e in r["errors"]]
    checks.expect(not errors, f"{name}: error frames: {errors[:3]}")


async def max_rate(node: NodeUnderTest, o: Options, checks: Checks,
                   urls: list[str] | None = None) -> dict[str, Any]:
    """`pairs` at rising rates, from a quarter of --rate up by a quarter each step, until p99
    passes the bound or deliveries fall behind."""
    steps = []
    best = 0
    rate = o.rate / 4
    while True:
        step_checks = Checks()
        # Falling behind ends the climb; only a correctness failure fails the run.
        figures = await pairs(node, o, step_checks, rate=rate, must_keep_up=False, urls=urls)
        p99 = figures["latency_ms"]["p99"] or 0
        kept_up = figures["delivered"] >= 0.98 * rate * o.duration
        steps.append({"rate": rate, "delivered_per_s": figures["delivered_per_s"],
                      "p99_ms": p99, "cpu_us": figures["server_cpu_us_per_delivered"],
                      "passed": step_checks.passed})
        checks.failures.extend(step_checks.failures)
        if not step_checks.passed or p99 > o.max_p99_ms or not kept_up:
            break
        best = figures["delivered_per_s"]
        rate = round(rate * 1.25)
    return {"steps": steps, "max_delivered_per_s": best, "p99_bound_ms": o.max_p99_ms}


async def idle(node: NodeUnderTest, o: Options, checks: Checks) -> dict[str, Any]:
    # Up to 100 sessions per user (tabs of one device): registering hashes a password, and
    # 10,000 of those would take longer than the run.
    users = min(100, max(1, o.sessions // 100))
    tokens = [u["token"] for u in await prepare.users(node.url, users)]
    per_worker = split(list(range(o.sessions)), o.workers)
    rss_before = node.rss_bytes()
    held: dict[str, int | None] = {}

    async def measure() -> None:
        await trio.sleep(1)  # let the node settle with every session open
        held["rss"] = node.rss_bytes()

    specs = [{"role": "idle", "url": node.url, "tokens": tokens, "sessions": len(part)}
             for part in per_worker]
    results, used = await run_measured(node, specs, between=measure)
    opened = sum(r["opened"] for r in results)
    connect_s = max(r["connect_s"] for r in results)
    failed = sum(r["failed"] for r in results)
    checks.expect(failed == 0, f"idle: {failed} sessions failed to open: "
                  f"{[f for r in results for f in r['failures']][:3]}")
    rss_after = held.get("rss")
    per_session = None
    if rss_before is not None and rss_after is not None and opened:
        per_session = round((rss_after - rss_before) / opened / 1024, 1)
    return {"sessions": o.sessions, "opened": opened,
            "connect_per_s": round(opened / connect_s) if connect_s else None,
            "server_cpu_us_per_session": us_each(used, opened),
            "rss_before_mb": mb(rss_before), "rss_after_mb": mb(rss_after),
            "rss_per_session_kib": per_session}


async def catchup(node: NodeUnderTest, o: Options, checks: Checks) -> dict[str, Any]:
    small = await _catchup_once(node, o.conversations, o.missed, checks)
    backlog_conversations = 10
    big = await _catchup_once(node, backlog_conversations, o.backlog // backlog_conversations,
                              checks)
    return {
        "conversations": o.conversations, "missed": o.missed,
        "synced_ms": round(small["seconds"] * 1000, 1),
        "backlog_messages": big["messages"],
        "backlog_s": round(big["seconds"], 2),
        "backlog_messages_per_s": round(big["messages"] / big["seconds"]),
        # Near 1.0: the node is the bottleneck; well below: the one client reading is.
        "backlog_server_cpu_share": None if big["cpu_s"] is None
        else round(big["cpu_s"] / big["seconds"], 2),
    }


async def _catchup_once(node: NodeUnderTest, conversations: int, missed: int, checks: Checks
                        ) -> dict[str, Any]:
    """A user with `conversations` peers who each sent `missed` messages while they were away."""
    viewer, *peers = await prepare.users(node.url, conversations + 1)
    ids = await prepare.directs(node.url, [(p, viewer) for p in peers])
    async with trio.open_nursery() as nursery:
        for peer, cid in zip(peers, ids, strict=True):
            nursery.start_soon(prepare.backlog, node.url, peer["token"], [cid], missed)
    cpu_before = node.cpu_s()
    seconds, seqs = await prepare.hello_to_synced(node.url, viewer["token"])
    cpu_after = node.cpu_s()
    messages = sum(len(s) for s in seqs.values())
    checks.expect(messages == conversations * missed,
                  f"catchup: {messages} messages, expected {conversations * missed}")
    checks.expect(all(s == list(range(1, missed + 1)) for s in seqs.values()),
                  "catchup: a conversation's messages were not 1..n in order")
    cpu_s = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return {"seconds": seconds, "messages": messages, "cpu_s": cpu_s}


async def ingest(node: NodeUnderTest, o: Options, checks: Checks) -> dict[str, Any]:
    """Each sender pipelines into its own conversation with an offline sink user."""
    sink, *senders = await prepare.users(node.url, o.senders + 1)
    ids = await prepare.directs(node.url, [(s, sink) for s in senders])
    everyone = [{"token": s["token"], "conversation_id": cid}
                for s, cid in zip(senders, ids, strict=True)]
    specs = [{"role": "ingest", "url": node.url, "senders": part, "duration": o.duration,
              "window": o.window} for part in split(everyone, o.workers)]
    batches_before = await commit_batches(node)
    results, used = await run_measured(node, specs)
    batches_after = await commit_batches(node)
    sent = sum(r["sent"] for r in results)
    check_common(checks, "ingest", results)
    jobs = batches_after[1] - batches_before[1]
    commits = batches_after[0] - batches_before[0]
    return {"senders": o.senders, "window": o.window, "acknowledged": sent,
            "acknowledged_per_s": round(sent / o.duration),
            "sent_latency_ms": latency_ms([x for r in results for x in r["sent_ns"]]),
            "server_cpu_us_per_send": us_each(used, sent),
            "commit_batch_mean": round(jobs / commits, 1) if commits else None}


async def metric(node: NodeUnderTest, name: str) -> float:
    """One sample of the node's /metrics (0 when it is absent)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(node.url + "/metrics")).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def commit_batches(node: NodeUnderTest) -> tuple[float, float]:
    """(commits, jobs) so far, from the node's Prometheus histogram."""
    return (await metric(node, "chatnode_commit_batch_size_count"),
            await metric(node, "chatnode_commit_batch_size_sum"))


async def group(node: NodeUnderTest, o: Options, checks: Checks) -> dict[str, Any]:
    members = await prepare.users(node.url, o.members)
    cid = await prepare.group(node.url, members[0], members[1:])
    tokens = [m["token"] for m in members]
    parts = split(tokens, o.workers)
    senders_left = o.group_senders
    specs = []
    for part in parts:
        senders = min(senders_left, -(-o.group_senders // len(parts)))
        senders_left -= senders
        specs.append({"role": "group", "url": node.url, "tokens": part, "senders": senders,
                      "conversation_id": cid, "duration": o.duration, "settle_s": 2.0,
                      "rate": o.group_rate * senders / o.group_senders})
    results, used = await run_measured(node, specs)
    overflows = await metric(node, "chatnode_outbox_overflows_total")
    checks.expect(overflows == 0, f"group: fell behind: the node closed {overflows:.0f} sessions"
                  " whose outbox filled (4008)")
    check_common(checks, "group", results)
    sent = sum(r["sent"] for r in results)
    received = [n for r in results for n in r["received"]]
    own = [n for r in results for n in r["own"]]
    short = sum(1 for got, mine in zip(received, own, strict=True) if got != sent - mine)
    checks.expect(short == 0, f"group: {short} members did not get every message exactly once")
    deliveries = sum(received)
    # Over the time the node took to deliver it all, which is longer than the load's when it
    # fell behind.
    active_s = max([o.duration, *(r["active_s"] for r in results)])
    return {"members": o.members, "senders": o.group_senders, "rate": o.group_rate,
            "sent": sent, "deliveries": deliveries,
            "deliveries_per_s": round(deliveries / active_s),
            "server_cpu_us_per_delivery": us_each(used, deliveries),
            "load_cpu_us_per_delivery": us_each(sum(r["cpu_s"] for r in results), deliveries),
            "sessions_closed_4008": round(overflows),
            "fanout_latency_ms": latency_ms([x for r in results for x in r["e2e_ns"]])}


async def transport(node: NodeUnderTest, o: Options, checks: Checks) -> dict[str, Any]:
    """The floor under the other scenarios: hypercorn with an ASGI app that only echoes
    (echo.py), loaded like chatnode is. Its CPU per frame is what the stack costs before
    chatnode does anything.
    - round trips (one frame in, one out) at the frame rate `pairs` moves at --rate;
    - outbound frames alone, asked for in bursts of 64, 10,000 a second;
    - connections opened (handshake and one round trip), as many as `idle` opens."""
    echo = NodeUnderTest.start_echo()
    try:
        return {**await _echo_round_trips(echo, o, checks), **await _echo_bursts(echo, o, checks),
                **await _echo_connects(echo, o, checks)}
    finally:
        echo.stop()


def _echo_specs(echo: NodeUnderTest, sessions: int, o: Options, mode: str, rate: float = 0,
                **extra: Any) -> list[dict[str, Any]]:
    return [{"role": "echo", "mode": mode, "url": echo.url, "sessions": len(part),
             "duration": o.duration, "rate": rate * len(part) / sessions, **extra}
            for part in split(list(range(sessions)), o.workers)]


async def _echo_round_trips(echo: NodeUnderTest, o: Options, checks: Checks) -> dict[str, Any]:
    sessions = 2 * o.pairs
    results, used = await run_measured(echo, _echo_specs(
        echo, sessions, o, "round_trips", FRAMES_PER_PAIRS_MESSAGE * o.rate))
    sent = sum(r["sent"] for r in results)
    echoed = sum(r["echoed"] for r in results)
    wrong = sum(r["wrong"] for r in results)
    checks.expect(echoed == sent and wrong == 0,
                  f"transport: {sent} frames sent, {echoed} echoed in order, {wrong} wrong")
    per_round_trip = us_each(used, echoed)
    return {"sessions": sessions, "round_trips_per_s": round(echoed / o.duration),
            "latency_ms": latency_ms([x for r in results for x in r["rtt_ns"]]),
            "server_cpu_us_per_round_trip": per_round_trip,
            "pairs_floor_us": None if per_round_trip is None
            else round(FRAMES_PER_PAIRS_MESSAGE * per_round_trip, 1)}


async def _echo_bursts(echo: NodeUnderTest, o: Options, checks: Checks) -> dict[str, Any]:
    # A rate the bare stack sustains on a small box: past its ceiling the frames queue and
    # the figure measures the backlog, not the frame.
    burst = 64
    asked_rate = OUT_FRAMES_PER_S
    results, used = await run_measured(echo, _echo_specs(
        echo, 2 * o.pairs, o, "bursts", asked_rate, burst=burst))
    frames = sum(r["burst_frames"] for r in results)
    asked = sum(r["burst_frames_asked"] for r in results)
    checks.expect(frames == asked, f"transport: {asked} frames asked for, {frames} arrived")
    per_frame = us_each(used, frames)
    return {"out_frames_asked_per_s": round(asked_rate), "out_frames": frames,
            "server_cpu_us_per_out_frame": per_frame,
            # What one core could send if it did nothing else: the node's trio thread is one.
            "out_frames_per_core_s": None if not per_frame else round(1e6 / per_frame)}


async def _echo_connects(echo: NodeUnderTest, o: Options, checks: Checks) -> dict[str, Any]:
    results, used = await run_measured(echo, _echo_specs(echo, o.sessions, o, "connects"))
    opened = sum(r["opened"] for r in results)
    checks.expect(opened == o.sessions, f"transport: {opened} of {o.sessions} sessions opened")
    connect_s = max(r["connect_s"] for r in results)
    return {"connects": opened, "connect_per_s": round(opened / connect_s) if connect_s else None,
            "server_cpu_us_per_connect": us_each(used, opened)}


SCENARIOS = {"pairs": pairs, "max": max_rate, "idle": idle, "catchup": catchup,
             "ingest": ingest, "group": group, "transport": transport, "search": search}
