"""The README's example outputs are what its commands print: this runs them, so that the two cannot drift apart."""
import re
import shlex

import numpy as np
from PIL import Image

from conftest import REPO, SHARED, run_cli, shared_path

FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def examples():
    """[(commands, printed)]: each README shell block of tinynet commands on the shared test data that is followed by
    a plain block, which shows what its last command prints; in README order."""
    blocks = FENCE.findall((REPO / "README.md").read_text(encoding="utf-8"))
    return [([line for line in text.splitlines() if line.strip()], printed)
            for (language, text), (after, printed) in zip(blocks, blocks[1:])
            if language == "sh" and after == "" and "../shared/" in text and text.startswith("tinynet ")]


def test_readme_examples_print_what_the_readme_shows(tmp_path):
    shared_path("images")  # skips when the shared data is absent
    found = examples()
    assert len(found) >= 2 and any("tinynet classify" in line for commands, _ in found for line in commands)
    for commands, printed in found:  # one store for all, as a reader following the README has
        expected = printed.replace("../shared/", f"{SHARED}/")
        for command in commands:
            words = [word.replace("../shared/", f"{SHARED}/") for word in shlex.split(command)]  # run in a checkout
            assert words[0] == "tinynet", command
            out = words.index("--out") + 1 if "--out" in words else None
            if out is not None:  # written under tmp_path, not into the checkout; then held to the committed files
                folder, words[out] = words[out], str(tmp_path / "out")
                expected = expected.replace(f"{folder.rstrip('/')}/", f"{tmp_path / 'out'}/")
            result = run_cli(*words[1:], home=tmp_path)
            assert result.returncode == 0, (command, result.stderr)
            if out is not None:
                committed = [p for p in (tmp_path / "out").iterdir() if (REPO / folder / p.name).exists()]
                assert committed, f"{command}: the README shows none of the files it writes"
                for path in committed:
                    committed_image = np.asarray(Image.open(REPO / folder / path.name))
                    assert np.array_equal(np.asarray(Image.open(path)), committed_image), path.name
        # Exact, but for the blank line that ends each image's block (a README block cannot end with one).
        assert result.stdout.rstrip("\n") == expected.rstrip("\n"), commands
