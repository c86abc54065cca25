import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def photo() -> Path:
    """A real photo from the shared COCO sample (skips outside CI when the data is absent)."""
    data = Path(os.environ.get("SSLD_ZOO_TEST_DATA", ROOT.parent / "shared" / "data"))
    images = sorted((data / "coco_mini" / "images" / "val").glob("*.jpg"))
    if not images:
        if os.environ.get("CI"):
            pytest.fail(f"no test images under {data}/coco_mini/images/val (CI needs ../shared/data)")
        pytest.skip(f"test data not found under {data}")
    return images[0]
