"""Service kit overhead: unary calls/s through the kit against bare gRPC, same run.

Workload: sequential unary calls of a 1 KiB payload to an echo method on
127.0.0.1, from one client thread (latency-bound, which is what an
interceptor's cost shows in).
Baseline: a bare ``grpc.server`` (same thread pool size and message bounds, no
interceptors, no health/reflection) called through a bare ``grpc.insecure_channel``.
Kit: the same handler registered through ``kit.start`` (request-id, metrics,
logging and bearer-token interceptors; health; reflection; /metrics) called
through ``kit.client.make_channel`` (default deadline, token, retry policy).
Printed: calls/s of each and kit/baseline (1.0 = no overhead).
Environment: BENCH_KIT_CALLS (calls per setting, default 2000).
Result: benchmarks/results/kit.json.
"""

from __future__ import annotations

import os
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
    run = Run("kit")

    bare = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    bare.add_generic_rpc_handlers((_handlers(),))
    port = bare.add_insecure_port("127.0.0.1:0")
    bare.start()
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    baseline = _measure(ch, calls)
    ch.close()
    bare.stop(0).wait()

    def build(config: ServiceConfig, ctx: ServiceContext) -> None:
        ctx.server.add_generic_rpc_handlers((_handlers(),))

    spec = ServiceSpec(name="benchkit", config_cls=ServiceConfig, build=build, default_port=0, default_metrics_port=0)
    svc = start(spec, overrides={"auth_token": "bench-token"})
    ch = make_channel(svc.address, ClientOptions(auth_token="bench-token"))
    kit = _measure(ch, calls)
    ch.close()
    svc.stop(grace=0)

    print(f"unary 1 KiB echo, {calls} sequential calls on loopback")
    print(f"  bare gRPC : {baseline:8.0f} calls/s")
    print(f"  kit       : {kit:8.0f} calls/s (interceptors, auth, metrics, client defaults)")
    print(f"  ratio kit/bare = {kit / baseline:.2f}")
    run.write(
        ratios={"kit / bare gRPC, unary calls/s": kit / baseline},
        sides={"bare_grpc_calls_per_s": round(baseline, 1), "kit_calls_per_s": round(kit, 1)},
        settings={"calls": calls, "payload_bytes": 1024, "client_threads": 1},
        workload="sequential unary 1 KiB echo calls on loopback from one client thread",
    )


if __name__ == "__main__":
    main()
