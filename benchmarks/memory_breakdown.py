"""Where an asyncio benchmark server's memory per connection goes (tracemalloc).

Runs one of the asyncio servers of ``servers.py`` in this process with
tracemalloc on, connects the load client, and prints the Python allocations
per connection grouped by package (and the top allocation sites). RSS growth
per connection is printed too: the difference is allocator overhead and
memory Python does not trace.

    python benchmarks/memory_breakdown.py --server ours-asyncio --n 1000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import os
import sys
import tracemalloc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import servers  # noqa: E402
from procs import Child, proc_rss  # noqa: E402
from profile_server import categorize  # noqa: E402

__all__ = ["main"]


async def _measure(kind: str, n: int, top: int) -> None:
    stop = asyncio.Event()
    ready_port: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def until_stopped() -> None:
        await stop.wait()

    servers._until_stdin_closes = until_stopped
    task = asyncio.create_task(servers._ASYNC[kind](1.0, 5.0, ready_port.set_result))
    port = await ready_port
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    rss0 = proc_rss(os.getpid())
    client = Child(
        [sys.executable, os.path.join(HERE, "loadclient.py"), "--port", str(port), "--n", str(n)]
    )
    try:
        line = await asyncio.get_running_loop().run_in_executor(None, client.readline, 120.0)
        await asyncio.sleep(2.5)  # a few heartbeats
        gc.collect()
        after = tracemalloc.take_snapshot()
        rss1 = proc_rss(os.getpid())
    finally:
        client.kill()
    tracemalloc.stop()
    stop.set()
    await asyncio.wait_for(task, 10)
    stats = after.compare_to(before, "filename")
    by_cat: collections.Counter[str] = collections.Counter()
    for st in stats:
        frame = st.traceback[0]
        by_cat[categorize(f"x ({frame.filename}:{frame.lineno})")] += st.size_diff
    total = sum(by_cat.values())
    print(f"{kind}, {line}: RSS growth {(rss1 - rss0) / n / 1024:.1f} KB per connection")
    print(f"traced Python allocations: {total / n / 1024:.2f} KB per connection")
    for cat, size in by_cat.most_common():
        print(f"  {cat:28} {size / n:8.0f} B per connection")
    print(f"\ntop {top} allocation sites:")
    for st in after.compare_to(before, "lineno")[:top]:
        frame = st.traceback[0]
        path = "/".join(frame.filename.split("/")[-2:])
        print(
            f"  {st.size_diff / n:7.0f} B/conn  {st.count_diff / n:5.1f} blocks/conn  "
            f"{path}:{frame.lineno}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", choices=sorted(servers._ASYNC), default="ours-asyncio")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    from loadclient import raise_nofile_limit

    raise_nofile_limit()
    asyncio.run(_measure(args.server, args.n, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
