"""A bounded load test on loopback: 500 prompts posted concurrently, a third of them invalid. Every valid one
completes, no invalid one is queued or runs, and the server's resident memory grows by less than 5 %."""

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PROMPTS, THREADS = 500, 16


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def graph(i: int, arousal: float = 0.25) -> dict:
    """Valence-Arousal -> PreviewAny: a valid prompt that runs in milliseconds (a new valence defeats the cache);
    every third one carries a NaN valence, which validation must refuse."""
    valence = math.nan if i % 3 == 0 else round(-2.9 + 5.8 * i / PROMPTS, 6)
    return {"1": {"class_type": "EmoNodes_ValenceArousal",
                  "inputs": {"valence": valence, "arousal": arousal, "extrapolate": False}},
            "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}


def test_concurrent_prompts_with_invalid_ones(host):
    for i in range(1, 60, 3):  # warm up (first-use allocations are not growth), other arousal: not cached later
        host.run(graph(i, arousal=-0.75))
    before = rss_kib(host.proc.pid)
    history_before = len(host.get("/history"))
    start = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(lambda i: (i, *host.queue(graph(i))), range(PROMPTS)))
    valid = {body["prompt_id"]: i for i, status, body in answers if status == 200}
    refused = [(i, body) for i, status, body in answers if status == 400]
    assert len(valid) + len(refused) == PROMPTS, [a for a in answers if a[1] not in (200, 400)][:3]
    assert sorted(valid.values()) == [i for i in range(PROMPTS) if i % 3], "a valid prompt was refused"
    assert all(i % 3 == 0 and "valence" in str(body["node_errors"]) for i, body in refused)

    deadline = time.monotonic() + 120
    while True:
        history = host.get("/history")
        done = [pid for pid in valid if pid in history and history[pid]["status"].get("completed")]
        if len(done) == len(valid):
            break
        assert time.monotonic() < deadline, f"{len(done)} of {len(valid)} valid prompts completed"
        time.sleep(0.25)
    wall = time.monotonic() - start
    assert all(history[pid]["status"]["status_str"] == "success" for pid in valid)
    assert len(history) - history_before == len(valid), "an invalid prompt reached the history"
    for pid, i in list(valid.items())[:: 50]:
        (text,) = history[pid]["outputs"]["2"]["text"]
        assert f"{graph(i)['1']['inputs']['valence']}" in text
    after = rss_kib(host.proc.pid)
    growth = (after - before) / before
    print(f"\nload: {PROMPTS} prompts ({len(valid)} valid, {len(refused)} refused) in {wall:.1f} s; "
          f"RSS {before / 1024:.1f} MiB -> {after / 1024:.1f} MiB ({growth:+.2%})")
    assert growth < 0.05
    host.run(graph(1, arousal=-1.5))
