"""Real datasets from ../shared/data: skipped with a reason when the folder is absent."""

import pytest

from slimrec.data.registry import load_dataset, sha256_of

pytestmark = pytest.mark.real_data


def test_gowalla_matches_published_statistics(shared_data):
    data = load_dataset("gowalla", shared_data, progress=False)
    assert (data.num_users, data.num_items) == (29858, 40981)
    assert data.train.nnz == 810128 and data.test.nnz == 217242
    assert data.user_ids[:3].tolist() == ["0", "1", "2"]


def test_gowalla_registry_checksums_match_the_shared_copy(shared_data, tmp_path):
    import gzip
    import shutil

    from slimrec.data.registry import DATASETS

    for remote in DATASETS["gowalla"].remote:
        plain = tmp_path / remote.filename
        with gzip.open(shared_data / "gowalla" / f"{remote.filename}.gz") as source, \
                open(plain, "wb") as out:
            shutil.copyfileobj(source, out)
        assert sha256_of(plain) == remote.sha256


def test_ml100k_atomic_files(shared_data):
    data = load_dataset("ml-100k", shared_data, seed=0, progress=False)
    assert (data.num_users, data.num_items) == (943, 1682)
    assert data.train.nnz + data.test.nnz == 100000
    assert 0.19 < data.test.nnz / 100000 < 0.21
