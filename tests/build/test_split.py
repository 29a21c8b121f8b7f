from repotune.build.split import drop_leaks, split_by_time


def test_newest_commits_are_test():
    times = [50, 10, 40, 20, 30, 60, 70, 80, 90, 100]
    labels = split_by_time(times, (0.8, 0.1, 0.1))
    assert labels.count("train") == 8
    assert labels[times.index(100)] == "test"
    assert labels[times.index(90)] == "val"
    train_max = max(t for t, lab in zip(times, labels) if lab == "train")
    assert train_max < 90


def test_small_history_still_gets_every_split():
    labels = split_by_time([3, 1, 2], (0.8, 0.1, 0.1))
    assert labels == ["test", "train", "val"]
    assert split_by_time([1, 2], (0.8, 0.1, 0.1)).count("train") == 2


def test_drop_leaks_removes_test_rows_seen_in_train():
    row = {"prompt": "p", "completion": "c"}
    splits = {
        "train": [dict(row)],
        "val": [],
        "test": [dict(row), {"prompt": "q", "completion": "c"}],
    }
    dropped = drop_leaks(splits)
    assert dropped == {"val": 0, "test": 1}
    assert [r["prompt"] for r in splits["test"]] == ["q"]
