"""The recommended artifact per target: the fastest counted row, ties (overlapping intervals) by size."""
from benchmarks.recommend import markdown, recommend


def row(artifact, median, lo, hi, threads=1, counted=True, target="cpu"):
    return {"artifact": artifact, "setting": f"x-{threads}t", "target": target, "threads": threads, "counted": counted,
            "summary_ms": {"median": median, "ci_low": lo, "ci_high": hi}}


def result(*rows):
    arts = [{"name": "tflite:float32", "format": "tflite", "size_bytes": 4000},
            {"name": "tflite:float16", "format": "tflite", "size_bytes": 2000},
            {"name": "tflite:int8", "format": "tflite", "size_bytes": 1000},
            {"name": "torch:student", "format": "torchscript", "size_bytes": 9000}]
    return {"artifacts": arts, "rows": list(rows)}


def test_level_rows_go_to_the_smaller_file_and_a_clear_winner_stays():
    rec = recommend(result(row("tflite:float32", 10.0, 9.5, 10.6), row("tflite:float16", 10.3, 9.8, 10.9),
                           row("tflite:int8", 20.0, 19, 21), row("torch:student", 1.0, 0.9, 1.1)))
    pick = rec["cpu 1 thread"]
    assert pick["artifact"] == "tflite:float16" and "level with the fastest (tflite:float32)" in pick["why"]
    rec = recommend(result(row("tflite:float32", 10.0, 9.5, 10.4), row("tflite:int8", 5.0, 4.8, 5.2),
                           row("tflite:float16", 4.0, 3.0, 4.1, counted=False)))  # failed parity: not a candidate
    assert rec["cpu 1 thread"]["artifact"] == "tflite:int8" and rec["cpu 1 thread"]["why"] == "the fastest"
    assert "| cpu 1 thread | tflite:int8 |" in markdown(rec)


def test_each_target_family_gets_its_own_pick():
    rec = recommend(result(row("tflite:float32", 10, 9, 11), row("tflite:int8", 30, 29, 31, threads=2),
                           row("tflite:float16", 50, 49, 51, target="browser")))
    assert {k: v["artifact"] for k, v in rec.items()} == {"cpu 1 thread": "tflite:float32",
                                                         "cpu all cores": "tflite:int8", "browser": "tflite:float16"}
    assert recommend(result()) == {} and "nothing to recommend" in markdown({})


def test_rows_whose_intervals_overlap_are_marked_level_within_their_family():
    from benchmarks.recommend import mark_level

    rows = [row("tflite:float32", 10.0, 9.5, 10.6), row("tflite:float16", 10.3, 9.8, 10.9),
            row("tflite:int8", 20.0, 19, 21), row("torch:student", 10.0, 9.0, 11.0, threads=2)]
    mark_level(rows)
    assert rows[0]["level_with"] == ["tflite:float16 on x-1t"] and rows[1]["level_with"] == ["tflite:float32 on x-1t"]
    assert rows[2]["level_with"] == [] and rows[3]["level_with"] == []  # another family: never ranked against
