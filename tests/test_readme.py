"""The README's example outputs are what its commands print: this runs them, so that the two cannot drift apart."""
import re
import shlex

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
        for command in commands:
            words = [word.replace("../shared/", f"{SHARED}/") for word in shlex.split(command)]  # run in a checkout
            assert words[0] == "tinynet", command
            result = run_cli(*words[1:], home=tmp_path)
            assert result.returncode == 0, (command, result.stderr)
        # Exact, but for the blank line that ends each image's block (a README block cannot end with one).
        assert result.stdout.rstrip("\n") == printed.replace("../shared/", f"{SHARED}/").rstrip("\n"), commands
