"""The jobs of a batch: the workflow once per V-A point x neutral prompt x source image, as independent prompts.

Each job has a key (the manifest's: ``p003_v-1.5_a3``, ``img-cat.png_t-awe``), the inputs it sets, and a file
stem. V-A jobs are named as the 5x5 protocol names its cells, ``V-A (v,a) _ prompt`` (what ``evaluate`` reads);
source-image jobs ``<image> to <target>``. A workflow without the node a job needs is refused before anything runs.
"""

from __future__ import annotations

import copy
import csv
import io
from pathlib import Path

from .client import Job
from .errors import BatchError
from .workflow import VA_CLASS, by_class, one_node, prompt_text_node, target_nodes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MAX_STEM = 150  # characters of a prompt kept in a file name


def parse_va(text: str) -> tuple[float, float]:
    parts = text.replace(";", ",").split(",")
    try:
        v, a = (float(x) for x in parts)
    except ValueError:
        raise BatchError(f"--va {text!r}: expected V,A (two numbers, e.g. --va=-1.5,2)") from None
    if not all(abs(x) < float("inf") for x in (v, a)):
        raise BatchError(f"--va {text!r}: not finite")
    return v, a


def grid(text: str, low: float = -3.0, high: float = 3.0) -> list[tuple[float, float]]:
    """``ROWSxCOLS``: columns = valence, rows = arousal (as Emotion Grid), spread evenly over [low, high]."""
    try:
        rows, cols = (int(x) for x in text.lower().split("x"))
        assert rows >= 1 and cols >= 1
    except (ValueError, AssertionError):
        raise BatchError(f"--va-grid {text!r}: expected ROWSxCOLS, e.g. 5x5") from None

    def spread(n: int) -> list[float]:
        return [0.0] if n == 1 else [round(low + (high - low) * i / (n - 1), 6) for i in range(n)]

    return [(v, a) for a in reversed(spread(rows)) for v in spread(cols)]


def va_file(path: str) -> list[tuple[float, float]]:
    """A CSV of valence,arousal rows (a header line is skipped; columns named valence/arousal are used by name)."""
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise BatchError(f"--va-file {path!r}: {e.strerror or e}") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if rows and {"valence", "arousal"} <= {c.strip().lower() for c in rows[0]}:
        header = [c.strip().lower() for c in rows[0]]
        rows = [[r[header.index("valence")], r[header.index("arousal")]] for r in rows[1:]]
    elif rows:
        try:
            float(rows[0][0])
        except (ValueError, IndexError):
            rows = rows[1:]
    points = []
    for n, r in enumerate(rows, 1):
        try:
            points.append(parse_va(",".join(r[:2])))
        except (BatchError, IndexError):
            raise BatchError(f"--va-file {path!r}: row {n} is not valence,arousal: {r!r}") from None
    if not points:
        raise BatchError(f"--va-file {path!r}: no valence,arousal rows")
    return points


def read_prompts(path: str) -> list[str]:
    try:
        lines = [line.strip() for line in Path(path).read_text().splitlines()]
    except OSError as e:
        raise BatchError(f"--prompts {path!r}: {e.strerror or e}") from None
    prompts = [line for line in lines if line]
    if not prompts:
        raise BatchError(f"--prompts {path!r}: no prompts (one a line)")
    seen = {}
    for n, p in enumerate(prompts):
        if p in seen:
            raise BatchError(f"--prompts {path!r}: prompt {n + 1} repeats prompt {seen[p] + 1}: {p!r}")
        seen[p] = n
    return prompts


def read_images(folder: str) -> list[Path]:
    root = Path(folder)
    if not root.is_dir():
        raise BatchError(f"--images {folder!r}: not a folder")
    found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise BatchError(f"--images {folder!r}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return found


def unique(points):
    return list(dict.fromkeys(points))


def file_text(text: str) -> str:
    """A prompt as a file-name part: no path separators, at most MAX_STEM characters."""
    text = "".join("_" if c in '/\\\0' or ord(c) < 32 else c for c in text).strip()
    return text[:MAX_STEM].rstrip() or "_"


def expand(base: dict, workflow_name: str, va: list[str], va_grid: str | None = None, va_csv: str | None = None,
           prompts: str | None = None, images: str | None = None, target: str | None = None) -> list[Job]:
    """Every job of the batch, checked against the workflow before anything runs."""
    points = [parse_va(p) for p in va] + (grid(va_grid) if va_grid else []) + (va_file(va_csv) if va_csv else [])
    points = unique(points)
    va_node = one_node(base, VA_CLASS, "a Valence-Arousal node", "a V-A point (--va, --va-grid, --va-file)") \
        if points else None
    text_node = prompt_text_node(base) if prompts else None
    texts = read_prompts(prompts) if prompts else [None]
    sources = read_images(images) if images else [None]
    image_node = one_node(base, "LoadImage", "a LoadImage node", "--images") if images else None
    if target is not None and not target_nodes(base):
        raise BatchError("--target needs a node with a 'target' input (an EmoEditor workflow)")
    if images and target is None and target_nodes(base):
        raise BatchError("--images: give --target CLASS (the emotion to edit towards)")
    if not images and target is not None:
        raise BatchError("--target goes with --images FOLDER")
    shown_prompt = None
    if points and not prompts:  # the workflow's own prompt names the files, when there is one to follow
        injections = by_class(base, "EmoNodes_EmotionInjection")
        if len(injections) == 1:
            try:
                shown_prompt = base[prompt_text_node(base)]["inputs"]["text"]
            except BatchError:
                pass
    jobs = []
    width = len(str(max(len(texts) - 1, 0)))
    for index, text in enumerate(texts):
        for source in sources:
            for point in points or [None]:
                prompt = copy.deepcopy(base)
                inputs, key, stem = {}, [], []
                if text is not None:
                    prompt[text_node]["inputs"]["text"] = text
                    inputs.update(prompt_index=index, prompt=text)
                    key.append(f"p{index:0{width}d}")
                uploads = {}
                if source is not None:
                    uploads[image_node] = (source.name, None)  # read when it is sent (see load_upload)
                    inputs.update(image=str(source), target=target)
                    key.append(f"img-{source.name}" + (f"_t-{target}" if target else ""))
                    stem.append(f"{source.stem} to {target}" if target else source.stem)
                if point is not None:
                    v, a = point
                    prompt[va_node]["inputs"].update(valence=v, arousal=a)
                    inputs.update(valence=v, arousal=a)
                    key.append(f"v{v:g}_a{a:g}")
                    about = text if text is not None else shown_prompt
                    stem.append(f"V-A ({v:g},{a:g})" + (f" _ {file_text(about)}" if about else ""))
                if not stem:
                    stem.append(workflow_name if text is None else f"{workflow_name} _ {file_text(text)}")
                job = Job(" ".join(stem), prompt, key="_".join(key) or "job", inputs=inputs)
                job.uploads = {k: (str(source), None) for k in uploads}
                jobs.append(job)
    if target is not None:
        for job in jobs:
            for node_id in target_nodes(job.prompt):
                job.prompt[node_id]["inputs"]["target"] = target
    names = [job.name for job in jobs]
    for job in jobs:  # two prompts that read the same in a file name
        if names.count(job.name) > 1:
            job.name = f"{job.name} #{job.key}"
    return jobs


def load_upload(job: Job) -> Job:
    """The job with its source images' bytes read (done where it is sent: the driver, once per try)."""
    job.uploads = {k: (Path(path).name, Path(path).read_bytes() if data is None else data)
                   for k, (path, data) in job.uploads.items()}
    return job
