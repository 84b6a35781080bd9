"""What a container run is warned of about data it could not read."""

from __future__ import annotations

from pathlib import Path

from toolkit.caveats import _out_of_the_containers_sight
from toolkit.config import ExperimentConfig


def test_data_a_container_cannot_read_is_said_once_and_a_link_loop_is_no_crash(
    tmp_path: Path,
) -> None:
    """A link to itself raised RuntimeError as the run ended, and the run lost its record; a
    link to nowhere was said both to be missing and to be read from outside."""
    (tmp_path / "elsewhere").mkdir()
    project = tmp_path / "p"
    (project / "checkpoints").mkdir(parents=True)
    (project / "ext").symlink_to(tmp_path / "elsewhere")
    (project / "loop").symlink_to("loop")
    (project / "gone").symlink_to("/nonexistent/ds")
    exp = ExperimentConfig(
        command="x",
        data=("ext", "loop", "gone", "checkpoints/ref.pt", "data/"),
        outputs=("checkpoints/", "model.pt"),
    )
    assert _out_of_the_containers_sight(project, exp, missing=["loop", "gone"]) == [
        "experiment.data ext links outside the project, which is all the container sees of "
        "this machine: the record has its fingerprint, but the run could not read it; copy it "
        "into the project, or run with --native",
        "experiment.data checkpoints/ref.pt lies in a declared output folder, which the "
        "container sees as this run's own, empty, outputs: the record has its fingerprint, but "
        "the run could not read it; keep such data out of experiment.outputs",
    ]
    assert _out_of_the_containers_sight(project, exp, missing=[])  # the loop: no RuntimeError
