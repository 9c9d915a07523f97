"""Service kit overhead: unary calls/s through the kit against bare gRPC, same run.

Workload: sequential unary calls of a 1 KiB payload to an echo method on
127.0.0.1, from one client thread (latency-bound, which is what an
interceptor's cost shows in).
Baseline: a bare ``grpc.server`` (same thread pool size and message bounds, no
interceptors, no health/reflection) called through a bare ``grpc.insecure_channel``.
Kit: the same handler registered through ``kit.start`` (request-id, metrics,
logging and bearer-token interceptors; health; reflection; /metrics) called
through ``kit.client.make_channel`` (default deadline, token, retry policy).
The two sides alternate over BENCH_KIT_ROUNDS rounds (default 3, order swapped each round).
Printed: calls/s of each and kit/baseline (1.0 = no overhead), medians over rounds.
Environment: BENCH_KIT_CALLS (calls per setting, default 2000).
Result: benchmarks/results/kit.json.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent import futures

import grpc

from benchmarks.report import Run
from maestromotif.kit import ClientOptions, ServiceConfig, ServiceContext, ServiceSpec, make_channel, start

METHOD = "/maestromotif.bench.Echo/Echo"


def _handlers() -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "maestromotif.bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(lambda r, c: r)}
    )


def _measure(channel: grpc.Channel, calls: int) -> float:
    fn = channel.unary_unary(METHOD)
    payload = b"x" * 1024
    for _ in range(50):  # warm-up: connection, thread pool
        fn(payload, timeout=10)
    start = time.perf_counter()
    for _ in range(calls):
        fn(payload, timeout=10)
    return calls / (time.perf_counter() - start)


def main() -> None:
    calls = int(os.environ.get("BENCH_KIT_CALLS", "2000"))
    rounds = int(os.environ.get("BENCH_KIT_ROUNDS", "3"))
    run = Run("kit")

    bare = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    bare.add_generic_rpc_handlers((_handlers(),))
    port = bare.add_insecure_port("127.0.0.1:0")
    bare.start()
    bare_ch = grpc.insecure_channel(f"127.0.0.1:{port}")

    def build(config: ServiceConfig, ctx: ServiceContext) -> None:
        ctx.server.add_generic_rpc_handlers((_handlers(),))

    spec = ServiceSpec(name="benchkit", config_cls=ServiceConfig, build=build, default_port=0, default_metrics_port=0)
    svc = start(spec, overrides={"auth_token": "bench-token"})
    kit_ch = make_channel(svc.address, ClientOptions(auth_token="bench-token"))
    baseline: list[float] = []
    kit: list[float] = []
    try:
        for r in range(rounds):  # alternate (order swapped each round), so that load changes hit both sides
            sides = [(baseline, bare_ch), (kit, kit_ch)]
            for out, ch in sides if r % 2 == 0 else sides[::-1]:
                out.append(_measure(ch, calls))
    finally:
        bare_ch.close()
        bare.stop(0).wait()
        kit_ch.close()
        svc.stop(grace=0)
    ratios = sorted(k / b for k, b in zip(kit, baseline))
    base_m, kit_m, ratio_m = statistics.median(baseline), statistics.median(kit), statistics.median(ratios)

    print(f"unary 1 KiB echo, {calls} sequential calls on loopback, {rounds} alternating rounds (medians)")
    print(f"  bare gRPC : {base_m:8.0f} calls/s  (rounds {', '.join(f'{x:.0f}' for x in baseline)})")
    print(f"  kit       : {kit_m:8.0f} calls/s (interceptors, auth, metrics, client defaults; rounds "
          f"{', '.join(f'{x:.0f}' for x in kit)})")
    print(f"  ratio kit/bare = {ratio_m:.2f}  (per round {', '.join(f'{x:.2f}' for x in ratios)})")
    run.write(
        ratios={"kit / bare gRPC, unary calls/s": ratio_m},
        sides={"bare_grpc_calls_per_s": [round(x, 1) for x in baseline], "kit_calls_per_s": [round(x, 1) for x in kit],
               "ratio_per_round": [round(x, 3) for x in ratios]},
        settings={"calls": calls, "rounds": rounds, "payload_bytes": 1024, "client_threads": 1},
        workload="sequential unary 1 KiB echo calls on loopback from one client thread; median of per-round ratios",
    )


if __name__ == "__main__":
    main()
