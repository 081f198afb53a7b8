"""Start the dev ComfyUI host with emo-nodes and the tiny test models, print its URL, stay up until Ctrl-C.

    .venv/bin/python tools/ui.py             # http://127.0.0.1:8188, or a free port when 8188 is taken
    .venv/bin/python tools/ui.py --port 0    # any free port
    .venv/bin/python tools/ui.py --gpu       # let ComfyUI use the accelerator (default: --cpu)

The example workflows are under Workflow > Browse Templates > emo-nodes; the tiny checkpoints
(``emo_tiny_*``) are in every model list, with the small pairs CSV of the training workflow in ``input/``.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import time

from comfy_host import ComfyHost, ensure_tiny_models, free_port
from tiny_graph import TINY_PAIRS, write_tiny_pairs

DEFAULT_PORT = 8188


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 for any free port (default 8188)")
    parser.add_argument("--gpu", action="store_true", help="run ComfyUI on the accelerator instead of --cpu")
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started in the background, where SIGINT is ignored
        signal.signal(sig, _interrupt)
    port = args.port
    if port == 0 or not port_is_free(port):
        if port:
            print(f"port {port} is taken; using a free one", flush=True)
        port = free_port()
    print("preparing the tiny models ...", flush=True)
    ensure_tiny_models()
    host = ComfyHost(port=port, cpu=not args.gpu)
    print("starting ComfyUI ...", flush=True)
    with host:
        write_tiny_pairs(host.base / "input" / TINY_PAIRS)
        print(f"\nComfyUI with emo-nodes: {host.url}\n(log: {host.log_path}; Ctrl-C stops it)", flush=True)
        try:
            while host.proc.poll() is None:
                time.sleep(0.5)
            print(f"ComfyUI exited with {host.proc.returncode}:\n{host.log_tail(2000)}", flush=True)
            sys.exit(1)
        except KeyboardInterrupt:
            print("\nstopping ComfyUI ...", flush=True)


if __name__ == "__main__":
    main()
