"""``python -m emo_core batch``: run an API workflow over many jobs (V-A points, prompts, source images) on one
ComfyUI server (standard library only) or on many through Ray, with a resumable manifest.

client (one prompt on one server, hardened: deadlines, /ws progress, /history, vanished prompts, per-job timeout),
websocket (the /ws reader), errors, workflow (finding and setting nodes), jobs (expansion), manifest (outputs and
resume), scheduler (the one driver loop over workers, and its in-process backend), ray_runner (Ray actors), cli.
Nothing here imports ComfyUI; Ray is imported only when it is asked for.
"""
