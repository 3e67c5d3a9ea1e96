"""A grpc.health.v1 server from grpcio's own health-checking package, for the probe tests.

Listens on 127.0.0.1 (a free port, printed on the first line), with the overall health ("")
and "ready" SERVING and "down" NOT_SERVING; with the argument `bare`, no health service at
all. Runs until its standard input closes.
"""
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
if sys.argv[1:] != ["bare"]:
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("ready", health_pb2.HealthCheckResponse.SERVING)
    servicer.set("down", health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
sys.stdin.read()
server.stop(0)
