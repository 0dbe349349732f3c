"""Chat commands end to end: command in → reply in the outbox → delivered to the vendor.

A real ``jixiao`` app (``bot.app.create_app`` with its delivery worker, on a SQLite file with the
example project scored) listens on 127.0.0.1; a fake Telegram Bot API on 127.0.0.1 records when
each ``sendMessage`` arrives. The load generator sends signed Telegram updates (secret-token
header) open-loop at ``--rate`` commands/s for ``--seconds``, rotating 得分 / 未填 / 未确认 / 报告
over ``--chats`` connected group chats (so Telegram's per-chat caps, which the outbox obeys, are
not what is measured). Latency = time from sending the update to the fake receiving the reply;
replies of one chat arrive in order, so they are matched to that chat's commands first-in
first-out. Also printed: the webhook's own answer time (the acknowledgement).

    .venv/bin/python bench/inbound.py                    # --rate 20 --seconds 15 --chats 50
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict, deque
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiohttp import web

SECRET = "bench-webhook-secret"
TOKEN = "123456:BENCH-token"
REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("/score@jixiao_bot", "/pending@jixiao_bot", "/unconfirmed@jixiao_bot", "/report@jixiao_bot")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


async def main(rate: float, seconds: float, n_chats: int) -> None:
    os.environ["BENCH_TG_SECRET"] = SECRET
    os.environ["BENCH_TG_TOKEN"] = TOKEN
    from bot.app import create_app
    from config.loader import load_definition
    from config.settings import Settings
    from scheduler.recompute import recompute
    from store.chats import connect_chat
    from store.db import create_engines, make_sessionmaker, transaction
    from store.migrate import upgrade
    from store.projects import load_project

    arrivals: dict[str, deque[float]] = defaultdict(deque)
    all_arrived = asyncio.Event()
    expected = int(rate * seconds)

    async def send_message(request: web.Request) -> web.Response:
        body = await request.json()
        arrivals[str(body["chat_id"])].append(time.perf_counter())
        if sum(len(v) for v in arrivals.values()) >= expected:
            all_arrived.set()
        return web.json_response({"ok": True, "result": {"message_id": 1}})

    fake = web.Application()
    fake.router.add_post(f"/bot{TOKEN}/sendMessage", send_message)
    fake_runner = web.AppRunner(fake)
    await fake_runner.setup()
    fake_site = web.TCPSite(fake_runner, "127.0.0.1", 0)
    await fake_site.start()
    fake_port = fake_runner.addresses[0][1]

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp),
            secret_key="bench-secret-key-0123456789abcdef",  # type: ignore[arg-type]
            load_example=False,
            inbound={
                "telegram": {
                    "secret_token_env": "BENCH_TG_SECRET",
                    "token_env": "BENCH_TG_TOKEN",
                    "username": "jixiao_bot",
                }
            },
            channel_base_urls={"telegram": f"http://127.0.0.1:{fake_port}"},
        )
        engine, read_engine = create_engines(settings.db_url)
        await upgrade(engine)
        sm, read_sm = make_sessionmaker(engine), make_sessionmaker(read_engine)
        now = datetime.now(UTC)
        async with transaction(sm) as session:
            result = await load_project(
                session, load_definition(REPO / "config" / "projects" / "urumqi-ip-2023"), now=now
            )
        code = result.project.code
        await recompute(sm, code, now=now)
        chats = [str(-1000000000000 - i) for i in range(n_chats)]
        async with transaction(sm) as session:
            for chat in chats:
                await connect_chat(session, "telegram", chat, code, now=now)

        app = create_app(settings, sessionmaker=sm, read_sessionmaker=read_sm)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url = f"http://127.0.0.1:{port}/bot/telegram"

        sent: dict[str, deque[float]] = defaultdict(deque)
        acks: list[float] = []
        errors = 0
        total = int(rate * seconds)

        async with aiohttp.ClientSession() as http:

            async def one(i: int) -> None:
                nonlocal errors
                chat = chats[i % n_chats]
                update = {
                    "update_id": 1000 + i,
                    "message": {
                        "message_id": i,
                        "chat": {"id": int(chat), "type": "supergroup", "title": f"群{i % n_chats}"},
                        "from": {"id": 7, "username": "wang"},
                        "date": int(time.time()),
                        "text": COMMANDS[i % len(COMMANDS)],
                    },
                }
                t0 = time.perf_counter()
                sent[chat].append(t0)
                async with http.post(
                    url,
                    data=json.dumps(update, ensure_ascii=False).encode(),
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
                ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
                acks.append(time.perf_counter() - t0)

            start = time.perf_counter()
            tasks = []
            for i in range(total):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
            try:
                await asyncio.wait_for(all_arrived.wait(), 60)
            except TimeoutError:
                pass  # reported below as fewer deliveries
            elapsed = time.perf_counter() - start

        latencies = []
        for chat, times in sent.items():
            got = arrivals.get(chat, deque())
            for t0, t1 in zip(times, got, strict=False):
                latencies.append(t1 - t0)
        await runner.cleanup()
        await fake_runner.cleanup()
        await read_engine.dispose()
        await engine.dispose()

    delivered = len(latencies)
    print(
        f"commands sent {total} at {rate:g}/s over {n_chats} chats; delivered {delivered}; webhook errors {errors}; {elapsed:.1f} s"
    )
    if latencies:
        ms = [x * 1000 for x in latencies]
        print(
            "command → delivered (ms): "
            f"p50 {pct(ms, 50):.0f}  p95 {pct(ms, 95):.0f}  p99 {pct(ms, 99):.0f}  max {max(ms):.0f}  mean {statistics.mean(ms):.0f}"
        )
    if acks:
        ms = [x * 1000 for x in acks]
        print(
            f"webhook answer (ms): p50 {pct(ms, 50):.0f}  p95 {pct(ms, 95):.0f}  p99 {pct(ms, 99):.0f}  max {max(ms):.0f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="commands per second (open loop)")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument(
        "--chats", type=int, default=50, help="connected group chats the commands rotate over"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.chats))
