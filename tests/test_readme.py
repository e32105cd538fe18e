"""The README's example output is what its commands print: this runs them, so that the two cannot drift apart."""
import re
import shlex

from conftest import REPO, SHARED, run_cli, shared_path

FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)


def example():
    """The README's shell block that runs on the shared test data (commands), and the plain block after it (what the
    last command prints)."""
    blocks = FENCE.findall((REPO / "README.md").read_text(encoding="utf-8"))
    for (language, text), (_, printed) in zip(blocks, blocks[1:]):
        if language == "sh" and "../shared/" in text and "tinynet classify" in text:
            return [line for line in text.splitlines() if line.strip()], printed
    raise AssertionError("README.md has no ```sh block of tinynet commands on ../shared with its output after it")


def test_readme_classify_example_prints_what_the_readme_shows(tmp_path):
    commands, printed = example()
    shared_path("images")  # skips when the shared data is absent
    result = None
    for command in commands:
        words = [word.replace("../shared/", f"{SHARED}/") for word in shlex.split(command)]  # README: run in a checkout
        assert words[0] == "tinynet", command
        result = run_cli(*words[1:], home=tmp_path)
        assert result.returncode == 0, (command, result.stderr)
    # Exact, but for the blank line that ends each image's block (a README block cannot end with one).
    assert result.stdout.rstrip("\n") == printed.replace("../shared/", f"{SHARED}/").rstrip("\n")
