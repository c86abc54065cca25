from pathlib import Path

import pytest


@pytest.fixture
def photo(test_data: Path) -> Path:
    """A real photo from the shared COCO sample."""
    return sorted((test_data / "coco_mini" / "images" / "val").glob("*.jpg"))[0]
