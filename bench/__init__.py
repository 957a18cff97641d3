"""Performance benchmark of the ICH service, CLI and a seed-style baseline (``python -m bench``).

Modules: machine (sgemm GFLOP/s, machine info), flops (FLOPs per slice from the ONNX graph,
floors), phantom (synthetic head CT inputs), client/server/service (gunicorn on loopback,
latency, throughput, worker RSS), cli_bench (CLI and in-process timings), baseline (the
TensorFlow Keras seed-style app), report (targets and tables), run (the command).
"""
