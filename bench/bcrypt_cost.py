"""How long one Worker-secret hash takes at each bcrypt cost, and what that means for a farm.

    .venv/bin/python bench/bcrypt_cost.py [--costs 8,9,10,11,12] [--repeat 5]

Prints, per cost: milliseconds per hash (median of --repeat), hashes per second per hashing
thread, and the seconds a farm of 1,000 Workers needs (one thread) to register or sign on again
after all their Managers' caches are empty (a restart, a power cut).
"""

from __future__ import annotations

import argparse
import statistics
import time

from flamenco.passwords import hash_secret


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--costs", default="8,9,10,11,12")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'cost':>4} {'ms/hash':>9} {'hashes/s/thread':>16} {'1,000 Workers (s)':>18}")
    for cost in (int(c) for c in args.costs.split(",")):
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            hash_secret(b"x" * 64, cost)
            times.append(time.perf_counter() - start)
        seconds = statistics.median(times)
        print(f"{cost:>4} {seconds * 1000:>9.1f} {1 / seconds:>16.1f} {1000 * seconds:>18.0f}")


if __name__ == "__main__":
    main()
