"""EmoEditor Training Pairs on the real host: an EmoPair JSON and a pairs folder from the input folder, skipping,
source_softmax computed by the loaded predictor, and bad choices refused once naming the input."""

import json
import os
import shutil

import numpy as np
from editor_pairs_synth import TINY_EMOPAIR, write_synthetic_pairs
from PIL import Image
from tiny_graph import TINY_FILES

NODE = "EmoNodes_EditorPairs"


def graph(dataset: str, predictor: bool = False, **inputs) -> dict:
    values = {"dataset": dataset, "image_root": "", "skip_bad_records": False, "open_images": True, **inputs}
    api = {"1": {"class_type": NODE, "inputs": values},
           "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 1]}}}
    if predictor:
        api["3"] = {"class_type": "EmoNodes_EmoEditorLoader",
                    "inputs": {k: TINY_FILES[k] for k in ("editor_name", "encoder_name", "predictor_name")}}
        values["predictor"] = ["3", 3]
    return api


def summary(host, api: dict) -> str:
    (text,) = host.run(api)["outputs"]["2"]["text"]
    return text


def fresh(host, name: str):
    folder = host.base / "input" / name
    shutil.rmtree(folder, ignore_errors=True)
    return folder


def test_reads_emopair_json_with_an_image_root_and_skips_bad_records(host):
    folder = fresh(host, "emo_test_editor_json")
    made = write_synthetic_pairs(folder / "EmoPair", n_train=8, n_val=2, size=32, seed=4)
    (folder / "json").mkdir()
    records = made["train_records"]
    (folder / "json" / "data.json").write_text(json.dumps(records))
    text = summary(host, graph("emo_test_editor_json/json/data.json", image_root="emo_test_editor_json/EmoPair"))
    assert text.startswith("8 pairs from emo_test_editor_json/json/data.json, 0 skipped"), text
    assert "target classes: amusement 1, anger 1, awe 1, contentment 1, disgust 1, excitement 1, fear 1, sadness 1" \
        in text, text

    broken = [*records[:3], {**records[3], "class_target": "joy"}, {**records[4], "img_src_path": "../secret.png"}]
    (folder / "json" / "broken.json").write_text(json.dumps(broken))
    api = graph("emo_test_editor_json/json/broken.json", image_root="emo_test_editor_json/EmoPair")
    message = host.run_error(api)["exception_message"]
    assert "record 4: class_target 'joy' is not one of amusement, anger" in message and "record 5" not in message
    api["1"]["inputs"]["skip_bad_records"] = True
    text = summary(host, api)
    assert text.startswith("3 pairs from emo_test_editor_json/json/broken.json, 2 skipped"), text
    assert "record 5: img_src_path '../secret.png' leads outside the dataset root" in text, text

    api = graph("emo_test_editor_json/json/data.json", image_root="/etc")
    assert "image_root: '/etc' is outside the folders" in host.run_error(api)["exception_message"]


def cached(entry) -> set[str]:
    return {n for m in entry["status"]["messages"] if m[0] == "execution_cached" for n in m[1]["nodes"]}


def test_the_node_reruns_when_its_files_change(host):
    folder = fresh(host, "emo_test_editor_rerun")
    made = write_synthetic_pairs(folder, n_train=8, n_val=0, size=32, seed=5)
    api = graph("emo_test_editor_rerun/train.json")
    host.run(api)
    assert "1" in cached(host.run(api))  # same files: ComfyUI reuses the result
    stamp = made["train_json"].stat().st_mtime_ns
    os.utime(made["train_json"], ns=(stamp, stamp + 2_000_000_000))  # touched after editing images in place
    assert "1" not in cached(host.run(api))

    pairs = fresh(host, "emo_test_editor_rerun_folder")
    for sub in ("source", "target"):
        (pairs / sub).mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(pairs / sub / "a.png")
    (pairs / "pairs.csv").write_text("name,class_source,class_target,prompt,source_softmax\n"
                                     "a.png,awe,fear,darken it,0.125 0.125 0.125 0.125 0.125 0.125 0.125 0.125\n")
    api = graph("emo_test_editor_rerun_folder")
    host.run(api)
    assert "1" in cached(host.run(api))
    Image.fromarray(np.full((16, 16, 3), 30, np.uint8)).save(pairs / "target" / "a.png")  # an edited image
    assert "1" not in cached(host.run(api))


def test_pairs_folder_gets_its_source_softmax_from_the_predictor(host):
    folder = fresh(host, "emo_test_editor_folder")
    rng = np.random.default_rng(0)
    for name in ("room.png", "street.png"):
        for sub in ("source", "target"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)).save(folder / sub / name)
    (folder / "pairs.csv").write_text("name,class_source,class_target,prompt\n"
                                      "room,sadness,contentment,make the room cosy\n"
                                      "street.png,fear,excitement,light up the street\n")
    message = host.run_error(graph("emo_test_editor_folder"))["exception_message"]
    assert "line 2: missing field(s) source_softmax (or let a predictor compute it)" in message, message
    text = summary(host, graph("emo_test_editor_folder", predictor=True))
    assert text.startswith("2 pairs from emo_test_editor_folder, 0 skipped, source_softmax computed for 2"), text
    assert "contentment 1" in text and "excitement 1" in text, text


def test_the_default_dataset_staged_in_the_test_host_runs(host):
    assert TINY_EMOPAIR == "EmoPair/data_EmoPair.json" == host.get("/object_info")[NODE]["input"]["required"][
        "dataset"][1]["default"]
    text = summary(host, graph(TINY_EMOPAIR, open_images=False))
    assert text.startswith(f"8 pairs from {TINY_EMOPAIR}, 0 skipped"), text
    api = graph(TINY_EMOPAIR, skip_bad_records="maybe")
    status, body = host.queue(api)
    errors = body["node_errors"]["1"]["errors"]
    assert status == 400 and len(errors) == 1 and "skip_bad_records" in errors[0]["details"], body


def test_a_bad_dataset_choice_is_refused_once_at_queue_time(host, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text("[]")
    for dataset, words in (("emo_no_such_dataset.json", "not found"), (str(outside), "is outside the folders"),
                           ("/etc/passwd", "is outside the folders"), ("", "the name is empty")):
        status, body = host.queue(graph(dataset))
        assert status == 400, body
        errors = body["node_errors"]["1"]["errors"]
        assert len(errors) == 1 and errors[0]["details"].startswith("dataset - dataset: "), errors
        assert words in errors[0]["details"], errors


SECRET = "TOPSECRET-4c1d"
SOFTMAX_CELL = "0.125 0.125 0.125 0.125 0.125 0.125 0.125 0.125"


def small_folder(host, name: str):
    folder = fresh(host, name)
    for sub in ("source", "target"):
        (folder / sub).mkdir(parents=True)
        for i, stem in enumerate(("a", "b", "c")):
            Image.fromarray(np.full((16, 16, 3), 40 * i + 20, np.uint8)).save(folder / sub / f"{stem}.png")
    return folder


def test_a_pairs_csv_symlinked_outside_the_allowed_folders_is_refused_unread(host, tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text(f"name,class_source,class_target,prompt\n{SECRET},awe,sadness,x\n")
    folder = small_folder(host, "emo_test_editor_symlinked_csv")
    (folder / "pairs.csv").symlink_to(secret)
    for skip in (False, True):
        message = host.run_error(graph("emo_test_editor_symlinked_csv", skip_bad_records=skip))["exception_message"]
        assert "outside the folders" in message and SECRET not in message, message


def test_fifos_as_the_dataset_are_refused_without_blocking(host):
    folder = fresh(host, "emo_test_editor_fifo")
    folder.mkdir(parents=True)
    os.mkfifo(folder / "pairs.json")
    details = host.rejection(graph("emo_test_editor_fifo/pairs.json"), "1")  # at queue time, never opened
    assert details.startswith("dataset - dataset: ") and "not a regular file" in details, details
    folder = small_folder(host, "emo_test_editor_fifo_folder")
    os.mkfifo(folder / "pairs.csv")
    message = host.run_error(graph("emo_test_editor_fifo_folder"), timeout=120)["exception_message"]
    assert "pairs.csv" in message and "not a regular file" in message, message
    assert host.get("/system_stats")["system"]["comfyui_version"]  # the execution thread is free


def test_deeply_nested_json_is_one_line_naming_the_record(host):
    folder = fresh(host, "emo_test_editor_deep")
    made = write_synthetic_pairs(folder, n_train=2, n_val=0, size=32, seed=6)
    records = json.dumps(made["train_records"][:1])
    deep = "[" * 100_000 + "]" * 100_000
    (folder / "deep.json").write_text(records[:-1] + ', {"class_source": ' + deep + "}]")
    for skip in (False, True):
        message = host.run_error(graph("emo_test_editor_deep/deep.json", skip_bad_records=skip))["exception_message"]
        assert "record 2: nested too deeply" in message and "\n" not in message.strip(), message
        assert "RecursionError" not in message, message


def test_a_latin1_row_in_a_pairs_folder_is_skipped_or_named_by_its_line(host):
    folder = small_folder(host, "emo_test_editor_latin1")
    (folder / "pairs.csv").write_bytes(b"name,class_source,class_target,prompt,source_softmax\n"
                                       + f"a.png,awe,fear,darken it,{SOFTMAX_CELL}\n".encode()
                                       + f"b.png,awe,fear,caf\xe9 gloom,{SOFTMAX_CELL}\n".encode("latin-1")
                                       + f"c.png,awe,fear,darken it more,{SOFTMAX_CELL}\n".encode())
    message = host.run_error(graph("emo_test_editor_latin1"))["exception_message"]
    assert "line 3: not UTF-8 text" in message, message
    text = summary(host, graph("emo_test_editor_latin1", skip_bad_records=True))
    assert text.startswith("2 pairs from emo_test_editor_latin1, 1 skipped"), text
    assert "line 3: not UTF-8 text" in text, text
